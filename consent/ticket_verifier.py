"""Verify a Consent Gateway decision ticket before editing anything. Copy this file into your service.

An algorithm provider's upstream receives each edit from the gateway with a ``Consent-Ticket``
header: a compact JWS (EdDSA/Ed25519, ``typ`` ``consent-ticket+jwt``) that names your algorithm's
filing number, the operation, the consents and the SHA-256 of every media part the gateway
authorised. Call :func:`verify_ticket` with the digests of the parts *you actually received*;
edit only if it returns, and refuse the request on any :class:`TicketError`::

    claims = verify_ticket(
        request.headers["Consent-Ticket"],
        jwks,                          # the gateway's /.well-known/jwks.json, cached by you
        {"source": sha256_hex_of_source, "target": sha256_hex_of_target},
        time.time(),
        issuer="https://gateway.example",
        audience="YOUR-FILING-NUMBER",
        replay_cache=cache,            # shared by all your processes (see ReplayCache)
    )
    edit(claims["operation"], ...)

It needs only the Python standard library and ``cryptography``, on purpose, so that it can be vendored
as one file; that is also why it repeats a little of what the gateway's own JWS module does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "LEEWAY_SECONDS",
    "MAX_LIFETIME_SECONDS",
    "TICKET_TYPE",
    "AlgorithmNotAllowed",
    "BadSignature",
    "InMemoryReplayCache",
    "LifetimeTooLong",
    "MalformedTicket",
    "MediaMismatch",
    "ReplayCache",
    "ReplayedTicket",
    "TicketError",
    "TicketExpired",
    "TicketNotYetValid",
    "UnknownKey",
    "WrongAudience",
    "WrongIssuer",
    "WrongType",
    "verify_ticket",
]

TICKET_TYPE = "consent-ticket+jwt"
MAX_LIFETIME_SECONDS = 120
# Tolerated clock difference between the gateway and the upstream.
LEEWAY_SECONDS = 5

_MAX_TICKET_CHARS = 16 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class TicketError(Exception):
    """The ticket does not authorise this edit. ``code`` is stable and safe to return to the caller."""

    code = "ticket_invalid"


class MalformedTicket(TicketError):
    code = "ticket_malformed"


class AlgorithmNotAllowed(TicketError):
    """The header names an algorithm other than EdDSA (``none``, HS256 with the public key, …)."""

    code = "ticket_algorithm_not_allowed"


class UnknownKey(TicketError):
    """No Ed25519 key with the ticket's ``kid`` in the JWKS (refresh a cached JWKS once, then refuse)."""

    code = "ticket_unknown_key"


class WrongType(TicketError):
    code = "ticket_wrong_type"


class BadSignature(TicketError):
    """Forged or altered."""

    code = "ticket_bad_signature"


class WrongIssuer(TicketError):
    code = "ticket_wrong_issuer"


class WrongAudience(TicketError):
    """Issued for another algorithm (filing number)."""

    code = "ticket_wrong_audience"


class TicketExpired(TicketError):
    code = "ticket_expired"


class TicketNotYetValid(TicketError):
    code = "ticket_not_yet_valid"


class LifetimeTooLong(TicketError):
    code = "ticket_lifetime_too_long"


class MediaMismatch(TicketError):
    """The media received are not exactly the media the gateway authorised."""

    code = "ticket_media_mismatch"


class ReplayedTicket(TicketError):
    code = "ticket_replayed"


class ReplayCache(Protocol):
    """Remembers ticket ids until they expire. Must be shared by every process that verifies tickets
    for one algorithm (e.g. Redis ``SET jti 1 NX EXAT expires_at``), or a replay to another process
    would pass."""

    def remember(self, jti: str, *, expires_at: float, now: float) -> bool:
        """Atomically record ``jti`` until ``expires_at``; False if it was already recorded."""
        ...


class InMemoryReplayCache:
    """A :class:`ReplayCache` for a single process (development, tests, one-worker deployments)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def remember(self, jti: str, *, expires_at: float, now: float) -> bool:
        with self._lock:
            # Forgetting expired ids keeps memory bounded by the tickets alive at once; an expired
            # ticket is refused by its exp claim anyway.
            for stale in [seen for seen, until in self._expiry.items() if until <= now]:
                del self._expiry[stale]
            if jti in self._expiry:
                return False
            self._expiry[jti] = expires_at
            return True


def verify_ticket(
    ticket: str,
    jwks: Mapping[str, Any],
    media_digests: Mapping[str, str],
    now: float | datetime,
    *,
    issuer: str,
    audience: str,
    replay_cache: ReplayCache,
) -> dict[str, Any]:
    """Return the ticket's claims if it authorises exactly this edit, else raise a :class:`TicketError`.

    ``media_digests`` maps each multipart role you received to the lowercase SHA-256 hex of its bytes;
    it must equal the ticket's ``media`` exactly (same roles, same digests). ``now`` is seconds since
    the epoch or a timezone-aware datetime. The ticket's id is consumed only when every other check
    has passed, so a ticket sent with the wrong media cannot be burnt by whoever intercepted it.
    """
    current = _epoch_seconds(now)
    claims = _authentic_claims(ticket, jwks)
    if claims.get("iss") != issuer:
        raise WrongIssuer(f"iss {claims.get('iss')!r} is not {issuer!r}")
    if claims.get("aud") != audience:
        raise WrongAudience(f"aud {claims.get('aud')!r} is not {audience!r}")
    iat, exp, jti = _int_claim(claims, "iat"), _int_claim(claims, "exp"), claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise MalformedTicket("jti must be a non-empty string")
    if not 0 < exp - iat <= MAX_LIFETIME_SECONDS:
        raise LifetimeTooLong(f"a ticket lives at most {MAX_LIFETIME_SECONDS} s")
    if current >= exp + LEEWAY_SECONDS:
        raise TicketExpired("the ticket has expired")
    if current < iat - LEEWAY_SECONDS:
        raise TicketNotYetValid("the ticket is issued in the future; check the clocks")
    if claims.get("media") != dict(media_digests):
        raise MediaMismatch("the media received are not the media the ticket authorises")
    if not replay_cache.remember(jti, expires_at=exp + LEEWAY_SECONDS, now=current):
        raise ReplayedTicket(f"ticket {jti} was used before")
    return claims


def _authentic_claims(ticket: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    header_segment, payload_segment, signature_segment = _split(ticket)
    header = _json_object(_b64url_decode(header_segment))
    if "crit" in header:
        raise MalformedTicket("critical header extensions are not supported")
    if header.get("alg") != "EdDSA":
        raise AlgorithmNotAllowed(f"alg {header.get('alg')!r} is not allowed; only EdDSA")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise MalformedTicket("the header's kid is missing or not a string")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != TICKET_TYPE:
        raise WrongType(f"typ {typ!r} is not {TICKET_TYPE}")
    key = _key(jwks, kid)
    try:
        key.verify(_b64url_decode(signature_segment), f"{header_segment}.{payload_segment}".encode("ascii"))
    except InvalidSignature as exc:
        raise BadSignature("the signature does not verify") from exc
    return _json_object(_b64url_decode(payload_segment))


def _key(jwks: Mapping[str, Any], kid: str) -> Ed25519PublicKey:
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise UnknownKey("the JWKS has no 'keys' array")
    for jwk in entries:
        if (
            isinstance(jwk, Mapping)
            and jwk.get("kid") == kid
            and jwk.get("kty") == "OKP"
            and jwk.get("crv") == "Ed25519"
            and jwk.get("use", "sig") == "sig"
            and "d" not in jwk
            and isinstance(jwk.get("x"), str)
        ):
            try:
                return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
            except (MalformedTicket, ValueError) as exc:
                raise UnknownKey(f"the JWKS key {kid!r} is not a valid Ed25519 public key") from exc
    raise UnknownKey(f"no Ed25519 signature key {kid!r} in the JWKS")


def _epoch_seconds(now: float | datetime) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedTicket(f"{name} must be an integer NumericDate")
    return value


def _split(ticket: object) -> tuple[str, str, str]:
    if not isinstance(ticket, str) or len(ticket) > _MAX_TICKET_CHARS:
        raise MalformedTicket("a ticket is a compact JWS string of at most 16 KiB")
    parts = ticket.split(".")
    if len(parts) != 3 or not all(parts):
        raise MalformedTicket("a compact JWS has three non-empty dot-separated parts")
    return parts[0], parts[1], parts[2]


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise MalformedTicket("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedTicket("not unpadded base64url") from exc


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_members)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedTicket("not UTF-8 JSON without duplicate members") from exc
    if not isinstance(value, dict):
        raise MalformedTicket("not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member")
    return members
