"""A reference editing service ("upstream") that an algorithm provider can copy.

It shows the one thing every upstream must do: edit nothing unless the request carries a decision
ticket from the gateway that names this algorithm and exactly the media received. It depends only on
Flask, httpx, ``consent/ticket_verifier.py`` (vendorable) and the demo edits of ``gateway.demo.media_edits``,
so it does not need the gateway's database or configuration.

``POST /edit``: multipart, one file part per media role (``source`` and ``target`` for face
operations, ``target`` alone for ``face_attribute_edit``, ``audio`` for voice operations) and the
ticket in the ``Consent-Ticket`` header. Parts without a filename (the gateway's JSON ``request``
part) are not media and are ignored: the operation is the one the ticket authorises. The answer is
the edited file, or ``application/problem+json``: 401 without a ticket, 403 with one that does not
authorise this edit, 400/413/415/422 for media it cannot edit, 503 when the gateway's keys cannot be
fetched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import httpx
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from consent.ticket_verifier import InMemoryReplayCache, ReplayCache, TicketError, UnknownKey, verify_ticket
from gateway.demo import media_edits

log = logging.getLogger(__name__)

TICKET_HEADER = "Consent-Ticket"
# Same base as the gateway's problems, repeated so that a provider can copy this file alone.
PROBLEM_BASE = "https://consent-gateway.dev/problems/"

_HTTP_CODES = MappingProxyType(
    {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 500: "internal_error"}
)

JwksSource = Callable[[], Mapping[str, Any]]

_Edit = Callable[[Mapping[str, bytes]], tuple[bytes, str]]


def _voice(semitones: float) -> _Edit:
    return lambda parts: (media_edits.shift_pitch(parts["audio"], semitones), media_edits.WAV)


# operation -> (media roles it needs, the edit). Voice operations differ only in how far they shift.
_EDITS: Mapping[str, tuple[frozenset[str], _Edit]] = MappingProxyType(
    {
        "face_swap": (
            frozenset({"source", "target"}),
            lambda parts: (media_edits.swap_face(parts["source"], parts["target"]), media_edits.PNG),
        ),
        "face_reenactment": (
            frozenset({"source", "target"}),
            lambda parts: (media_edits.swap_face(parts["source"], parts["target"], opacity=0.6), media_edits.PNG),
        ),
        "face_attribute_edit": (
            frozenset({"target"}),
            lambda parts: (media_edits.restyle_face(parts["target"]), media_edits.PNG),
        ),
        "voice_clone": (frozenset({"audio"}), _voice(-4)),
        "voice_conversion": (frozenset({"audio"}), _voice(5)),
        "voice_edit": (frozenset({"audio"}), _voice(3)),
    }
)


class JwksUnavailable(Exception):
    """The gateway's JWKS cannot be fetched; no ticket can be checked, so nothing is edited."""


class CachedJwks:
    """The gateway's ``/.well-known/jwks.json``, fetched over HTTP and kept for ``ttl`` seconds.

    :meth:`refresh` re-fetches early (at most every ``min_refresh`` seconds) for a ticket signed
    with a key this cache has not seen yet, so that a key rotation is picked up at once.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._client = client or httpx.Client(timeout=5.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: Mapping[str, Any] | None = None
        self._fetched_at = 0.0

    def __call__(self) -> Mapping[str, Any]:
        with self._lock:
            jwks = self._jwks
            if jwks is None:
                return self._fetch()
            if self._clock() - self._fetched_at >= self._ttl:
                try:
                    jwks = self._fetch()
                except JwksUnavailable:
                    # Keep the keys we have (retired keys stay published, so they do not go bad) and
                    # try again in min_refresh seconds: a gateway too busy to answer (its threads
                    # waiting on this very upstream) must not turn every edit into a refusal.
                    log.warning("JWKS refresh failed; using the keys fetched before", exc_info=True)
                    self._fetched_at = self._clock() - self._ttl + self._min_refresh
            return jwks

    def warm(self, *, retry_every: float = 1.0) -> threading.Thread:
        """Fetch in the background until it succeeds, so that no edit waits for the first fetch.

        The first fetch must not happen inside an edit: the gateway forwarding that edit may have all
        of its threads waiting for this upstream, and could not answer the JWKS request (a circular
        wait that turned every edit into a 502 under load until the fetch timed out).
        """

        def run() -> None:
            while True:
                try:
                    self()
                    return
                except JwksUnavailable:
                    time.sleep(retry_every)  # the gateway is not up yet; nothing else to wait on

        thread = threading.Thread(target=run, name="jwks-warm-up", daemon=True)
        thread.start()
        return thread

    def refresh(self) -> bool:
        """Fetch again unless the last fetch was very recent; True if the keys were fetched."""
        with self._lock:
            if self._jwks is not None and self._clock() - self._fetched_at < self._min_refresh:
                return False
            self._fetch()
            return True

    def _fetch(self) -> Mapping[str, Any]:
        try:
            response = self._client.get(self._url)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"cannot fetch {self._url}: {exc}") from exc
        if not isinstance(jwks, dict):
            raise JwksUnavailable(f"{self._url} is not a JWK set")
        self._jwks, self._fetched_at = jwks, self._clock()
        return jwks


def create_demo_upstream(
    *,
    issuer: str,
    jwks: str | JwksSource,
    filing_number: str,
    replay_cache: ReplayCache | None = None,
    clock: Callable[[], float] = time.time,
    max_upload_bytes: int = 64 * 1024 * 1024,
    warm_keys: bool = False,
) -> Flask:
    """The reference upstream for algorithm ``filing_number``, trusting tickets of ``issuer``.

    ``jwks`` is the gateway's JWKS URL or a callable returning the JWK set. ``replay_cache`` must be
    shared by all processes of a multi-process deployment; the in-memory default suits one process.
    ``warm_keys`` fetches the JWKS in the background from the start (see :meth:`CachedJwks.warm`).
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    keys = CachedJwks(jwks) if isinstance(jwks, str) else jwks
    if isinstance(keys, CachedJwks) and warm_keys:
        keys.warm()
    seen = replay_cache if replay_cache is not None else InMemoryReplayCache()

    def authorised(ticket: str, digests: Mapping[str, str]) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            now = clock()
            return verify_ticket(ticket, keys(), digests, now, issuer=issuer, audience=filing_number, replay_cache=seen)

        try:
            return attempt()
        except UnknownKey:
            # A kid we have not seen may be a freshly rotated key: look once more, then refuse.
            if isinstance(keys, CachedJwks) and keys.refresh():
                return attempt()
            raise

    @app.post("/edit")
    def edit() -> Response:
        ticket = request.headers.get(TICKET_HEADER)
        if not ticket:
            raise _Refusal(
                401,
                "ticket_missing",
                f"send the gateway's decision ticket in the {TICKET_HEADER} header",
                headers={"WWW-Authenticate": TICKET_HEADER},
            )
        parts = _media_parts()
        claims = authorised(ticket, {role: hashlib.sha256(data).hexdigest() for role, data in parts.items()})
        edited, content_type = _edit_for(claims, parts)(parts)
        return Response(edited, content_type=content_type, headers={"Cache-Control": "no-store"})

    @app.errorhandler(_Refusal)
    def refused(exc: _Refusal) -> Response:
        return _problem(exc.status, exc.code, exc.detail, headers=exc.headers)

    @app.errorhandler(TicketError)
    def ticket_refused(exc: TicketError) -> Response:
        return _problem(403, exc.code, str(exc))

    @app.errorhandler(JwksUnavailable)
    def keys_unavailable(exc: JwksUnavailable) -> Response:
        return _problem(503, "jwks_unavailable", str(exc))

    @app.errorhandler(media_edits.UnsupportedMedia)
    def unsupported(exc: media_edits.UnsupportedMedia) -> Response:
        return _problem(415, exc.code, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return _problem(status, _HTTP_CODES.get(status, f"http_{status}"), exc.description)

    return app


class _Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _media_parts() -> dict[str, bytes]:
    parts: dict[str, bytes] = {}
    for role in request.files:
        uploads = request.files.getlist(role)
        if len(uploads) != 1:
            raise _Refusal(400, "bad_media_parts", f"send the {role!r} part once")
        parts[role] = uploads[0].read()
    if not parts:
        raise _Refusal(400, "bad_media_parts", "send one file part per media role")
    return parts


def _edit_for(claims: Mapping[str, Any], parts: Mapping[str, bytes]) -> _Edit:
    operation = claims.get("operation")
    if not isinstance(operation, str) or operation not in _EDITS:
        raise _Refusal(422, "operation_not_supported", f"this upstream does not perform {operation!r}")
    roles, run = _EDITS[operation]
    if set(parts) != roles:
        raise _Refusal(422, "media_roles_mismatch", f"{operation} needs the parts {sorted(roles)}, got {sorted(parts)}")
    return run


def _problem(status: int, code: str, detail: str | None, *, headers: Mapping[str, str] | None = None) -> Response:
    body = {"type": PROBLEM_BASE + code, "title": code.replace("_", " ").capitalize(), "status": status, "code": code}
    if detail:
        body["detail"] = detail
    response = Response(json.dumps(body), status=status, content_type="application/problem+json")
    response.headers.update(headers or {})
    return response
