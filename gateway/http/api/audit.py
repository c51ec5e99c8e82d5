"""Auditor access: entries, signed checkpoints, RFC 9162 proofs, verifier keys and the export bundle."""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context

from audit import export as audit_export
from audit import queries
from audit.errors import AuditError
from audit.proofs import ProofUnavailable, consistency, inclusion
from gateway.auditing.runner import seal, verifier_keys
from gateway.auditing.trail import Actor, record
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, map_exception
from gateway.http import openapi
from gateway.keys.keyring import key_store
from gateway.keys.store import jwks

bp = Blueprint("audit_api", __name__, url_prefix="/v1/audit")

_SHARD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_PAGE = 500
EXPORT_MAX_DAYS = 400

map_exception(queries.BadCursor, lambda exc: Problem(400, "bad_cursor", str(exc)))
map_exception(ProofUnavailable, lambda exc: Problem(404, "proof_unavailable", str(exc)))
map_exception(AuditError, lambda exc: Problem(422, "audit_error", str(exc)))


def _time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError as exc:
        raise Problem(400, "invalid_parameter", f"{name} must be an RFC 3339 timestamp", parameter=name) from exc
    if moment.tzinfo is None:
        raise Problem(400, "invalid_parameter", f"{name} needs a time zone (e.g. Z)", parameter=name)
    return moment.astimezone(UTC)


def _id_param(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is not None and not _ID.match(raw):
        raise Problem(400, "invalid_parameter", f"{name} is not a valid identifier", parameter=name)
    return raw


def _int_param(name: str, default: int | None, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise Problem(400, "invalid_parameter", f"{name} is required", parameter=name)
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(400, "invalid_parameter", f"{name} must be an integer in [{low}, {high}]", parameter=name)
    return int(raw)


def _shard_param(required: bool) -> str | None:
    raw = request.args.get("shard")
    if raw is None:
        if required:
            raise Problem(400, "invalid_parameter", "shard (YYYY-MM) is required", parameter="shard")
        return None
    if not _SHARD.match(raw):
        raise Problem(400, "invalid_parameter", "shard must be YYYY-MM", parameter="shard")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@bp.get("/entries")
@require("audit:read")
def entries() -> Response:
    where = queries.EntryFilter(
        since=_time("since"), until=_time("until"), action=_id_param("action"), subject=_id_param("subject"),
        client_id=_id_param("client_id"), consent_id=_id_param("consent_id"),
    )
    limit = _int_param("limit", 100, 1, MAX_PAGE)
    rows, cursor = queries.entries(db.session, where, limit, request.args.get("cursor"))
    return jsonify(
        entries=[{"shard": r.shard, "index": r.seq, "leaf_hash": _b64(r.leaf_hash),
                  "entry": json.loads(r.body), "raw": r.body.decode()} for r in rows],
        next_cursor=cursor,
    )


@bp.get("/checkpoints/latest")
@require("audit:read")
def latest_checkpoint() -> Response:
    checkpoint = queries.latest_checkpoint(db.session, _shard_param(required=False))
    if checkpoint is None:
        raise Problem(404, "no_checkpoint", "no checkpoint has been signed for that shard yet")
    return jsonify(shard=checkpoint.shard, size=checkpoint.size, root=_b64(checkpoint.root),
                       note=checkpoint.note, kid=checkpoint.kid,
                       created_at=checkpoint.created_at.isoformat())


@bp.get("/keys")
@require("audit:read")
def audit_keys() -> Response:
    return jsonify(vkeys=verifier_keys(db.session, current_app.config["ISSUER"]))


@bp.get("/proofs/inclusion")
@require("audit:read")
def inclusion_proof() -> Response:
    shard = _shard_param(required=True)
    assert shard is not None
    size = _int_param("size", None, 1, 2**62)
    index = _int_param("index", None, 0, 2**62)
    path = inclusion(db.session, shard, index, size)
    return jsonify(shard=shard, index=index, size=size, proof=[_b64(h) for h in path])


@bp.get("/proofs/consistency")
@require("audit:read")
def consistency_proof() -> Response:
    shard = _shard_param(required=True)
    assert shard is not None
    old = _int_param("old_size", None, 1, 2**62)
    new = _int_param("new_size", None, 1, 2**62)
    path = consistency(db.session, shard, old, new)
    return jsonify(shard=shard, old_size=old, new_size=new, proof=[_b64(h) for h in path])


@bp.get("/export")
@require("audit:export")
def export_bundle() -> Response:
    now = utcnow()
    until = _time("until") or now
    since = _time("since") or until - timedelta(days=31)
    if not since < until or until - since > timedelta(days=EXPORT_MAX_DAYS):
        raise Problem(400, "invalid_range", f"need since < until, at most {EXPORT_MAX_DAYS} days apart")
    # The export is itself audited, with who asked for which range, before a byte leaves.
    record(db.session, "audit.exported", Actor("auditor", g.client_id), now, client_id=g.client_id,
           detail={"since": since.isoformat(), "until": until.isoformat()})
    db.session.commit()
    spool = build_export(since, until, now)
    name = f"audit-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}.zip"

    def stream() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(256 * 1024):
                yield chunk

    return Response(stream_with_context(stream()), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def build_export(since: datetime, until: datetime, now: datetime) -> Any:
    """Write the bundle to a temporary file (constant memory) and return it rewound."""
    issuer = current_app.config["ISSUER"]
    # Everything committed so far gets sequenced and signed, so the bundle covers it.
    seal(current_app._get_current_object(), now)  # type: ignore[attr-defined]
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the streaming generator
    session = db.read_session()
    try:
        audit_export.write(session, spool, issuer=issuer, since=since, until=until, now=now,
                           vkeys=verifier_keys(session, issuer), jwks=jwks(key_store().all(session)))
    except BaseException:
        spool.close()
        raise
    finally:
        session.close()
    spool.seek(0)
    return spool


_AUDIT_READ = openapi.protected("audit:read")
_ERRORS = {"400": openapi.problem(), "401": openapi.problem(), "403": openapi.problem()}


def _q(name: str, description: str, *, required: bool = False, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": kind}}


PATHS: dict[str, Any] = {
    "/v1/audit/entries": {"get": {
        "summary": "Audit entries in log order, filtered, cursor-paged", "tags": ["audit"], **_AUDIT_READ,
        "parameters": [_q("since", "RFC 3339, inclusive"), _q("until", "RFC 3339, exclusive"),
                       _q("action", "e.g. decision.denied"), _q("subject", "sub_… id"),
                       _q("client_id", "app"), _q("consent_id", "cns_… id"),
                       _q("limit", "page size, 1 to 500", kind="integer"),
                       _q("cursor", "next_cursor of the last page")],
        "responses": {"200": openapi.json_response("a page of entries"), **_ERRORS}}},
    "/v1/audit/checkpoints/latest": {"get": {
        "summary": "Latest signed checkpoint (C2SP signed note)", "tags": ["audit"], **_AUDIT_READ,
        "parameters": [_q("shard", "YYYY-MM; default the newest")],
        "responses": {"200": openapi.json_response("checkpoint"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/keys": {"get": {
        "summary": "Signed-note verifier keys (active and retired)", "tags": ["audit"], **_AUDIT_READ,
        "responses": {"200": openapi.json_response("vkeys"), **_ERRORS}}},
    "/v1/audit/proofs/inclusion": {"get": {
        "summary": "RFC 9162 inclusion proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": [_q("shard", "YYYY-MM", required=True), _q("index", "leaf index", required=True,
                                                                  kind="integer"),
                       _q("size", "tree size of a checkpoint", required=True, kind="integer")],
        "responses": {"200": openapi.json_response("proof"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/proofs/consistency": {"get": {
        "summary": "RFC 9162 consistency proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": [_q("shard", "YYYY-MM", required=True),
                       _q("old_size", "older tree size", required=True, kind="integer"),
                       _q("new_size", "newer tree size", required=True, kind="integer")],
        "responses": {"200": openapi.json_response("proof"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/export": {"get": {
        "summary": "Signed export bundle (zip) for a time range; the export is itself audited",
        "tags": ["audit"], **openapi.protected("audit:export"),
        "parameters": [_q("since", "RFC 3339, default until minus 31 days"), _q("until", "RFC 3339, default now")],
        "responses": {"200": {"description": "bundle (docs/AUDIT_BUNDLE.md)",
                              "content": {"application/zip": {"schema": {"type": "string",
                                                                         "contentMediaType": "application/zip"}}}},
                      **_ERRORS}}},
}
