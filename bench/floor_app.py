"""The floor: the least an allowed decision can cost, with every guarantee the gateway keeps.

Not the gateway and not a way to build it: a yardstick beside ``bench/bare_app.py``. One function on the
gateway's own database does, with the DB-API cursor and hand-written SQL, the work an allow cannot skip
without dropping a guarantee:

- the bearer token (while its app exists), the algorithm and the named consent read on every request, in
  one statement (a revocation, a suspension or a withdrawal is seen by the next request), and the token's
  expiry, revocation and scope, the algorithm's status and operations, the consent's app, status,
  operations, algorithms, window and uses checked;
- the ticket signed (Ed25519, a compact JWS over the ticket's claims) before anything is written;
- the writes, all or none: the conditional ``UPDATE … RETURNING`` that takes the use (status and count
  re-checked at the row), the decision row and the audit queue row (RFC 8785 bytes). On SQLite one
  ``BEGIN IMMEDIATE`` transaction with the gateway's PRAGMAs, writers queued on a ``flock`` as the
  gateway's are; on PostgreSQL one statement (a CTE, atomic on its own), so a decision is two round trips.

A database error answers 503 and drops the thread's connection, as the gateway does. What it leaves
out, and the gateway does: the audit ticker that sequences the entry into the log (~0.05 ms an entry,
batched), problem+json errors, request validation against the schema, metrics, logging, biometric
binding (a consent bound to a face is refused, never allowed unchecked), decisions naming several
consents, and the risk counter of denials (only allows are measured). It is one minimal design, not a
proof that no cheaper one exists: what it measures is how far a careful hand-written decision gets on
this machine and server.

``app`` serves it as a Flask view (the bare endpoint's framework); ``wsgi`` serves the same function with
no framework at all, to bound what even leaving Flask could reach.

The database is ``FLOOR_DATABASE_URL`` (a SQLite path or a ``postgresql://`` URL), prepared by
``bench/decisions.py`` exactly as for the gateway; one connection per serving thread.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, Response, abort, jsonify, request

app = Flask(__name__)

URL = os.environ.get("FLOOR_DATABASE_URL", "")
POSTGRES = URL.startswith("postgresql")
KEY = Ed25519PrivateKey.generate()  # the gateway decrypts its key once per process too
KID = "floor"
TICKET_TTL = timedelta(seconds=300)


def _sql(text: str) -> str:
    """Placeholders for the driver: sqlite3 takes ``?``, psycopg ``%s``."""
    return text.replace("?", "%s") if POSTGRES else text


# Reads: the token (only while its app exists), the algorithm and the named consent, in one statement
# (one round trip on PostgreSQL).
READ = _sql("SELECT t.client_id, t.scope, t.issued_at, t.expires_in, t.revoked, a.status, a.operations, c.id, "
            "c.client_id, c.subject_id, c.status, c.operations, c.algorithms, c.not_before, c.expires_at, "
            "c.max_uses, c.uses, c.bindings FROM (SELECT 1) AS anchor "
            "LEFT JOIN oauth_tokens t ON t.access_token_hash = ? "
            "AND EXISTS (SELECT 1 FROM oauth_clients k WHERE k.client_id = t.client_id) "
            "LEFT JOIN algorithms a ON a.filing_number = ? LEFT JOIN consents c ON c.id = ?")
# Writes. The use: only if the consent is active with a use left at the row; the use that reaches the
# limit ends the consent in the same statement (as consent.enforcement.USE).
USE = ("UPDATE consents SET uses = uses + 1, "
       "status = CASE WHEN max_uses IS NOT NULL AND uses + 1 >= max_uses THEN 'exhausted' ELSE status END, "
       "ended_at = CASE WHEN max_uses IS NOT NULL AND uses + 1 >= max_uses THEN ? ELSE ended_at END, "
       "ended_by = CASE WHEN max_uses IS NOT NULL AND uses + 1 >= max_uses THEN 'system' ELSE ended_by END "
       "WHERE id = ? AND status = 'active' AND (max_uses IS NULL OR uses < max_uses) RETURNING id")
DECISION_COLUMNS = ("INSERT INTO decisions (id, client_id, operation, algorithm, consents, media, allowed, reason, "
                    "created_at, ticket_expires_at) ")
QUEUED = "INSERT INTO audit_queue (ts, body) "
# SQLite: three statements in one BEGIN IMMEDIATE … COMMIT. PostgreSQL: one statement, atomic on its own
# (autocommit), so the writes are one round trip: the inserts happen only if the use was taken.
SQLITE_WRITES = (USE, DECISION_COLUMNS + "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", QUEUED + "VALUES (?, ?)")
POSTGRES_WRITE = _sql(f"WITH used AS ({USE}), "  # noqa: S608 -- constants only; values are parameters
                      f"decided AS ({DECISION_COLUMNS}SELECT ?, ?, ?, ?, ?, ?, ?, NULL, ?, ? FROM used RETURNING id) "
                      f"{QUEUED}SELECT ?, ? FROM decided RETURNING id")

_local = threading.local()


def _connection() -> Any:
    connection = getattr(_local, "connection", None)
    if connection is None:
        if POSTGRES:
            import psycopg

            connection = psycopg.connect(URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        else:
            import sqlite3

            connection = sqlite3.connect(URL.removeprefix("sqlite:///"), isolation_level=None,
                                         check_same_thread=False)
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
                connection.execute(f"PRAGMA {pragma}")
            # Writers queue on a flock, woken by the kernel, as the gateway's do (gateway/core/db.py):
            # SQLite's own busy handler sleeps between tries and leaves the lock idle under load.
            _local.lock = os.open(URL.removeprefix("sqlite:///") + ".floor-lock", os.O_RDWR | os.O_CREAT, 0o600)
        _local.connection = connection
    return connection


def close() -> None:
    """Close this thread's connection and lock file (the next request opens them again)."""
    connection, lock = getattr(_local, "connection", None), getattr(_local, "lock", None)
    _local.connection = _local.lock = None
    if connection is not None:
        with contextlib.suppress(Exception):
            connection.close()
    if lock is not None:
        os.close(lock)


def _canonical(value: Any) -> bytes:
    # RFC 8785's bytes for ASCII names, strings and integers (all a decision has): sorted, no whitespace.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # SQLite has text, PostgreSQL JSON


def _names(value: Any) -> list[str]:
    names = _json(value)
    if not isinstance(names, list):
        raise Refused(503)  # unreadable state: never an allow
    return names


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _aware(value: Any) -> datetime:
    if value is None:
        raise Refused(503)  # the window is NOT NULL: a missing bound is unreadable state, never an allow
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _stored(moment: datetime) -> Any:
    """A datetime as the column holds it: SQLAlchemy's text on SQLite (always six digits), native on PostgreSQL."""
    return moment if POSTGRES else moment.replace(tzinfo=None).isoformat(" ", timespec="microseconds")


def _write_sqlite(connection: Any, use: tuple[Any, ...], decision: tuple[Any, ...], queued: tuple[Any, ...]) -> bool:
    fcntl.flock(_local.lock, fcntl.LOCK_EX)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            if connection.execute(SQLITE_WRITES[0], use).fetchone() is None:
                connection.execute("ROLLBACK")
                return False
            connection.execute(SQLITE_WRITES[1], decision)
            connection.execute(SQLITE_WRITES[2], queued)
            connection.execute("COMMIT")
            return True
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error
                connection.execute("ROLLBACK")
            raise
    finally:
        fcntl.flock(_local.lock, fcntl.LOCK_UN)


class Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def decision(authorization: str, body: dict[str, Any]) -> dict[str, Any]:
    """The allow's answer, or :class:`Refused` with its HTTP status (401, 403, 409 when the row said no, 503)."""
    try:
        return _decide(authorization, body)
    except Refused:
        raise
    except (KeyError, TypeError) as error:  # a body without the members, or of the wrong types
        raise Refused(400) from error
    except Exception as error:
        close()  # a database error: this connection may be broken; the next request opens another
        raise Refused(503) from error


def _decide(authorization: str, body: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    operation, algorithm, consent_ids, media = body["operation"], body["algorithm"], body["consents"], body["media"]
    if not (isinstance(consent_ids, list) and len(consent_ids) == 1 and isinstance(media, list)):
        raise Refused(400)  # one consent: the measured case
    connection = _connection()
    token_hash = hashlib.sha256(authorization.removeprefix("Bearer ").encode()).hexdigest()
    (client_id, scope, issued_at, expires_in, revoked, algorithm_status, algorithm_operations, consent_id,
     consent_client, subject, status, operations, algorithms, not_before, expires_at, max_uses, uses, bindings,
     ) = connection.execute(READ, (token_hash, algorithm, consent_ids[0])).fetchone()
    if (client_id is None or revoked or issued_at + expires_in <= int(time.time())
            or "edit:face" not in scope.split()):
        raise Refused(401)
    if (algorithm_status != "active" or operation not in _names(algorithm_operations)
            or consent_id is None or consent_client != client_id or status != "active"
            or not _aware(not_before) <= now < _aware(expires_at)
            or (max_uses is not None and uses >= max_uses)
            or operation not in _names(operations)
            or (algorithms is not None and _json(algorithms) is not None and algorithm not in _names(algorithms))
            or "face" in (_json(bindings) or {})):
        raise Refused(403)
    decision_id = "dec_" + secrets.token_urlsafe(16)
    expires = now.replace(microsecond=0) + TICKET_TTL
    media_map = {m["role"]: m["sha256"] for m in media}
    claims = {"iss": "floor", "jti": decision_id, "aud": algorithm, "iat": int(now.timestamp()),
              "exp": int(expires.timestamp()), "client_id": client_id, "operation": operation,
              "consents": consent_ids, "media": media_map, "binding": "not_checked"}
    header = _canonical({"alg": "EdDSA", "kid": KID, "typ": "consent-ticket+jwt"})
    signing_input = _b64(header) + "." + _b64(_canonical(claims))
    ticket = signing_input + "." + _b64(KEY.sign(signing_input.encode()))
    entry = {"action": "decision.allowed", "actor": {"type": "client", "id": client_id},
             "request_id": secrets.token_hex(8), "decision_id": decision_id, "client_id": client_id,
             "operation": operation, "algorithm": algorithm, "consent_id": consent_id, "subject": subject,
             "consents": consent_ids, "media": media_map, "ts": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    stamp = _stored(now)
    row = (decision_id, client_id, operation, algorithm, json.dumps(consent_ids), json.dumps(media_map), True,
           stamp, _stored(expires))
    if POSTGRES:
        taken = connection.execute(POSTGRES_WRITE, (stamp, consent_id, *row, stamp, _canonical(entry))).fetchone()
    else:
        taken = _write_sqlite(connection, (stamp, consent_id), row, (stamp, _canonical(entry)))
    if not taken:
        raise Refused(409)  # a withdrawal or the last use won the row: nothing was written
    return {"algorithm": algorithm, "allowed": True, "consents": consent_ids, "decision_id": decision_id,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "media": media_map, "operation": operation,
            "ticket": ticket}


@app.post("/v1/decisions")
def decide() -> tuple[Response, int]:
    try:
        return jsonify(decision(request.headers.get("Authorization", ""), request.get_json())), 201
    except Refused as refused:
        abort(refused.status)


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


_REASONS = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized",
            403: "403 Forbidden", 404: "404 Not Found", 409: "409 Conflict", 503: "503 Service Unavailable"}


def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same decision without Flask or Werkzeug: bounds what even leaving the framework could reach."""
    answer: dict[str, Any]
    if environ["PATH_INFO"] == "/healthz":
        status, answer = 200, {"status": "ok"}
    elif environ["PATH_INFO"] == "/v1/decisions" and environ["REQUEST_METHOD"] == "POST":
        try:
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            status, answer = 201, decision(environ.get("HTTP_AUTHORIZATION", ""), body)
        except ValueError:
            status, answer = 400, {"status": 400}
        except Refused as refused:
            status, answer = refused.status, {"status": refused.status}
    else:
        status, answer = 404, {"status": 404}
    data = json.dumps(answer).encode()
    start_response(_REASONS[status], [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
