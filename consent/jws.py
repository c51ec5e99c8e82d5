"""Compact JWS (RFC 7515) with EdDSA/Ed25519 (RFC 8037) over RFC 8785 canonical JSON.

Both the protected header and the payload are JCS-serialised, so the signed bytes of a record are a
function of its claims alone: the audit log can hash them and any verifier can recompute them.

``verify`` is deliberately narrow: one algorithm, keys only from the caller's key set (never from
``jwk``/``jku``/``x5u`` headers), no ``crit`` extensions. It checks authenticity, type and issuer;
time (``nbf``/``exp``) is the caller's business, because an expired consent record must still verify
when a subject or auditor presents it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent import canonical
from consent.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    InvalidKeySet,
    InvalidTerms,
    MalformedRecord,
    UnknownKey,
    UnsupportedHeader,
    WrongIssuer,
    WrongType,
)
from consent.signing import Signer

ALGORITHM = "EdDSA"

# A record is a few kilobytes; refusing anything far larger bounds the work an attacker can cause.
_MAX_TOKEN_CHARS = 64 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ED25519_KEY_BYTES = 32


@dataclass(frozen=True)
class VerifiedRecord:
    """A record whose signature, type and issuer have been checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    payload_bytes: bytes


def sign(claims: Mapping[str, Any], signer: Signer, typ: str) -> str:
    """Sign ``claims`` as a compact JWS of type ``typ`` with the signer's key."""
    if claims.get("iss") != signer.issuer:
        raise InvalidTerms(f"claims name issuer {claims.get('iss')!r}, the key signs for {signer.issuer!r}")
    header = {"alg": ALGORITHM, "kid": signer.kid, "typ": typ}
    try:
        signing_input = _b64url(canonical.dumps(header)) + "." + _b64url(canonical.dumps(dict(claims)))
    except rfc8785.CanonicalizationError as exc:
        raise InvalidTerms(f"claims have no RFC 8785 form: {exc}") from exc
    return signing_input + "." + _b64url(signer.sign(signing_input.encode("ascii")))


def verify(token: str, keys: Mapping[str, Ed25519PublicKey], *, issuer: str, typ: str) -> VerifiedRecord:
    """Return the verified record, or raise an :class:`~consent.errors.InvalidRecord` subclass."""
    header_segment, payload_segment, signature_segment = _split(token)
    header = _json_object(_b64url_decode(header_segment, "header"), "header")
    if "crit" in header:
        raise UnsupportedHeader("the header lists critical extensions; none are supported")
    if header.get("alg") != ALGORITHM:
        raise AlgorithmNotAllowed(f"alg {header.get('alg')!r} is not allowed; only {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise MalformedRecord("the header's kid is missing or not a string")
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(f"no published key has kid {kid!r}")
    presented_typ = header.get("typ")
    if not isinstance(presented_typ, str) or _media_type(presented_typ) != _media_type(typ):
        raise WrongType(f"typ {presented_typ!r} is not {typ!r}")
    signature = _b64url_decode(signature_segment, "signature")
    try:
        key.verify(signature, f"{header_segment}.{payload_segment}".encode("ascii"))
    except InvalidSignature as exc:
        raise BadSignature("the signature does not match the header and payload") from exc
    payload = _b64url_decode(payload_segment, "payload")
    claims = _json_object(payload, "payload")
    if claims.get("iss") != issuer:
        raise WrongIssuer(f"iss {claims.get('iss')!r} is not {issuer!r}")
    return VerifiedRecord(header=header, claims=claims, payload_bytes=payload)


def jwks_to_keys(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signature keys of a JWK set by ``kid``; keys of other types or uses are skipped."""
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise InvalidKeySet("a JWK set needs a 'keys' array")
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in entries:
        if not isinstance(jwk, Mapping):
            raise InvalidKeySet("every entry of 'keys' must be a JSON object")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidKeySet("an Ed25519 key without a kid cannot be selected")
        if "d" in jwk:
            # Whoever published this leaked a private key; trusting it would accept forgeries.
            raise InvalidKeySet(f"key {kid!r} publishes private key material")
        if kid in keys:
            raise InvalidKeySet(f"kid {kid!r} names two keys")
        keys[kid] = _public_key(jwk.get("x"), kid)
    return keys


def _public_key(x: object, kid: str) -> Ed25519PublicKey:
    try:
        raw = _b64url_decode(x, "x") if isinstance(x, str) else b""
    except MalformedRecord:
        raw = b""
    if len(raw) != _ED25519_KEY_BYTES:
        raise InvalidKeySet(f"key {kid!r} has no 32-byte 'x'")
    return Ed25519PublicKey.from_public_bytes(raw)


def _split(token: object) -> tuple[str, str, str]:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise MalformedRecord("a record is a compact JWS string of at most 64 KiB")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise MalformedRecord("a compact JWS has three non-empty dot-separated parts")
    return parts[0], parts[1], parts[2]


def _media_type(typ: str) -> str:
    # RFC 7515 §4.1.9: "application/" may be omitted and media types compare case-insensitively.
    return typ.lower().removeprefix("application/")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise MalformedRecord(f"the {what} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedRecord(f"the {what} is not unpadded base64url") from exc
    # Non-zero trailing bits would let one record have several spellings.
    if _b64url(data) != segment:
        raise MalformedRecord(f"the {what} is not canonical base64url")
    return data


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedRecord(f"the {what} is not UTF-8 JSON without duplicate members") from exc
    if not isinstance(value, dict):
        raise MalformedRecord(f"the {what} is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing duplicates closes that ambiguity.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
