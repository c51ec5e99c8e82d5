"""Claims of the three signed record types, exactly as DESIGN.md "Identifiers and formats" lists them.

Each builder takes a frozen spec and returns the claims dict that :func:`consent.jws.sign` signs. The
builders refuse facts that cannot make a valid record (:class:`~consent.errors.InvalidTerms`), so a
record that was signed is always well-formed. Times become NumericDate (integral seconds, floored).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from consent.errors import InvalidTerms
from consent.operations import LOCALES, OPERATIONS, Modality

CONSENT_TYP = "consent+jwt"
# Records granted with a biometric template say so (``ver`` 2, ``consent.evidence.<modality>`` naming the
# model and the template's SHA-256); records without one are version 1 and carry no ``ver``, exactly as
# before, so every record signed earlier keeps verifying.
BOUND_RECORD_VERSION = 2
BOUND_MODALITIES = ("face", "voice")
REVOCATION_TYP = "consent-revocation+jwt"
TICKET_TYP = "consent-ticket+jwt"
TICKET_MAX_LIFETIME = timedelta(seconds=120)

# A media role names a multipart part (``source``, ``target``, ``audio``); digests are lowercase hex.
MEDIA_ROLE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
SHA256_HEX_PATTERN = re.compile(r"[0-9a-f]{64}")

IdPrefix = Literal["creq", "cns", "rev", "dec", "sub"]
_ID_PREFIXES: frozenset[str] = frozenset(("creq", "cns", "rev", "dec", "sub"))
# 18 random bytes = 24 base64url characters = 144 bits: unguessable, and never padded.
_ID_RANDOM_BYTES = 18

RevokedBy = Literal["subject", "client", "admin"]
_REVOKERS: frozenset[str] = frozenset(("subject", "client", "admin"))


def new_id(prefix: IdPrefix) -> str:
    """A fresh random identifier such as ``cns_3q2-…``."""
    if prefix not in _ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{secrets.token_urlsafe(_ID_RANDOM_BYTES)}"


@dataclass(frozen=True)
class Notice:
    """The exact notice text the subject was shown: its version, SHA-256 (hex) and locale."""

    version: str
    sha256: str
    locale: str


@dataclass(frozen=True)
class Collection:
    """How consent was collected: ``method`` (e.g. hosted screen), ``authn`` (e.g. email code), when."""

    method: str
    authn: str
    at: datetime


@dataclass(frozen=True)
class ConsentRecordSpec:
    consent_id: str
    request_id: str
    subject_id: str
    client_id: str
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    operations: tuple[str, ...]
    purpose: str
    algorithms: tuple[str, ...] | None  # filing numbers; None = any registered algorithm
    max_uses: int | None
    notice: Notice
    collection: Collection
    jurisdiction: str
    legal_basis: str
    supersedes: str | None = None
    # Open for what later proves who consented (e.g. the digest of a biometric template).
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RevocationRecordSpec:
    revocation_id: str
    consent_id: str
    subject_id: str
    client_id: str
    issued_at: datetime
    by: RevokedBy
    reason: str


@dataclass(frozen=True)
class TicketSpec:
    decision_id: str
    algorithm: str  # filing number: the only upstream that may accept the ticket
    client_id: str
    operation: str
    consent_ids: tuple[str, ...]
    media: Mapping[str, str]  # role -> SHA-256 hex
    issued_at: datetime
    expires_at: datetime
    # "checked": the gateway matched every face or voice in the media against the named subjects'
    # templates. "not_checked": nobody did (decision mode, or consents granted without a template);
    # an upstream that needs binding refuses such a ticket.
    binding: Literal["checked", "not_checked"] = "not_checked"


def consent_claims(spec: ConsentRecordSpec, *, issuer: str) -> dict[str, Any]:
    _require_id(spec.consent_id, "cns", "consent_id")
    _require_id(spec.request_id, "creq", "request_id")
    _require_id(spec.subject_id, "sub", "subject_id")
    _require_text(spec.client_id, "client_id")
    iat, nbf, exp = (_numeric_date(t) for t in (spec.issued_at, spec.not_before, spec.expires_at))
    if not iat <= nbf < exp:
        raise InvalidTerms("a consent needs issued_at <= not_before < expires_at")
    operations = _canonical_operations(spec.operations)
    _require_text(spec.purpose, "purpose")
    algorithms = None if spec.algorithms is None else _unique_sorted(spec.algorithms, "algorithms")
    if spec.max_uses is not None and (isinstance(spec.max_uses, bool) or spec.max_uses < 1):
        raise InvalidTerms("max_uses is a positive integer or None")
    if not SHA256_HEX_PATTERN.fullmatch(spec.notice.sha256):
        raise InvalidTerms("notice.sha256 must be 64 lowercase hex digits")
    if spec.notice.locale not in LOCALES:
        raise InvalidTerms(f"notice.locale must be one of {LOCALES}")
    _require_text(spec.notice.version, "notice.version")
    _require_text(spec.collection.method, "collection.method")
    _require_text(spec.collection.authn, "collection.authn")
    collected_at = _numeric_date(spec.collection.at)
    if collected_at > iat:
        raise InvalidTerms("consent cannot be collected after the record is issued")
    _require_text(spec.jurisdiction, "jurisdiction")
    _require_text(spec.legal_basis, "legal_basis")
    bound = _template_evidence(spec.evidence)

    claims: dict[str, Any] = {
        "iss": issuer,
        "jti": spec.consent_id,
        "sub": spec.subject_id,
        "aud": spec.client_id,
        "iat": iat,
        "nbf": nbf,
        "exp": exp,
        "request": spec.request_id,
        "consent": {
            "operations": operations,
            "modalities": [m.value for m in Modality if any(OPERATIONS[o].modality is m for o in operations)],
            "purpose": spec.purpose,
            "algorithms": algorithms,
            "max_uses": spec.max_uses,
            "notice": {
                "version": spec.notice.version,
                "sha256": spec.notice.sha256,
                "locale": spec.notice.locale,
            },
            "collection": {
                "method": spec.collection.method,
                "authn": spec.collection.authn,
                "at": collected_at,
            },
            "jurisdiction": spec.jurisdiction,
            "legal_basis": spec.legal_basis,
            "evidence": dict(spec.evidence),
        },
    }
    if bound:
        claims["ver"] = BOUND_RECORD_VERSION
    if spec.supersedes is not None:
        _require_id(spec.supersedes, "cns", "supersedes")
        if spec.supersedes == spec.consent_id:
            raise InvalidTerms("a consent cannot supersede itself")
        claims["supersedes"] = spec.supersedes
    return claims


def revocation_claims(spec: RevocationRecordSpec, *, issuer: str) -> dict[str, Any]:
    _require_id(spec.revocation_id, "rev", "revocation_id")
    _require_id(spec.consent_id, "cns", "consent_id")
    _require_id(spec.subject_id, "sub", "subject_id")
    _require_text(spec.client_id, "client_id")
    if spec.by not in _REVOKERS:
        raise InvalidTerms(f"by must be one of {sorted(_REVOKERS)}")
    if not isinstance(spec.reason, str):
        raise InvalidTerms("reason must be a string")
    return {
        "iss": issuer,
        "jti": spec.revocation_id,
        "consent": spec.consent_id,
        "sub": spec.subject_id,
        "aud": spec.client_id,
        "iat": _numeric_date(spec.issued_at),
        "by": spec.by,
        "reason": spec.reason,
    }


def ticket_claims(spec: TicketSpec, *, issuer: str) -> dict[str, Any]:
    _require_id(spec.decision_id, "dec", "decision_id")
    _require_text(spec.algorithm, "algorithm")
    _require_text(spec.client_id, "client_id")
    _require_operation(spec.operation)
    iat, exp = _numeric_date(spec.issued_at), _numeric_date(spec.expires_at)
    if not 0 < exp - iat <= TICKET_MAX_LIFETIME.total_seconds():
        raise InvalidTerms(f"a ticket lives more than 0 and at most {TICKET_MAX_LIFETIME.total_seconds():.0f} s")
    if not spec.consent_ids:
        raise InvalidTerms("a ticket names at least one consent")
    for consent_id in spec.consent_ids:
        _require_id(consent_id, "cns", "consent_ids")
    if len(set(spec.consent_ids)) != len(spec.consent_ids):
        raise InvalidTerms("a ticket names each consent once")
    if not spec.media:
        raise InvalidTerms("a ticket authorises at least one media part")
    if spec.binding not in ("checked", "not_checked"):
        raise InvalidTerms("binding is 'checked' or 'not_checked'")
    for role, digest in spec.media.items():
        if not MEDIA_ROLE_PATTERN.fullmatch(role) or not SHA256_HEX_PATTERN.fullmatch(digest):
            raise InvalidTerms(f"media {role!r}: roles are short lowercase names, digests lowercase SHA-256 hex")
    return {
        "iss": issuer,
        "jti": spec.decision_id,
        "aud": spec.algorithm,
        "iat": iat,
        "exp": exp,
        "client_id": spec.client_id,
        "operation": spec.operation,
        "consents": list(spec.consent_ids),
        "media": dict(spec.media),
        "binding": spec.binding,
    }


def _template_evidence(evidence: Mapping[str, Any]) -> list[str]:
    """The modalities whose template ``evidence`` names, each checked to be ``{model, template_sha256}``."""
    bound = []
    for modality in BOUND_MODALITIES:
        if modality not in evidence:
            continue
        entry = evidence[modality]
        if (not isinstance(entry, Mapping) or set(entry) != {"model", "template_sha256"}
                or not SHA256_HEX_PATTERN.fullmatch(str(entry["template_sha256"]))):
            raise InvalidTerms(f"evidence.{modality} names a model and a template_sha256 (lowercase hex)")
        _require_text(entry["model"], f"evidence.{modality}.model")
        bound.append(modality)
    return bound


def whole_seconds(moment: datetime) -> datetime:
    """``moment`` floored to the second: what a NumericDate claim says, so a stored time can equal it."""
    return datetime.fromtimestamp(_numeric_date(moment), moment.tzinfo)


def _numeric_date(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time is ambiguous by hours; a record must not depend on the server's zone.
        raise InvalidTerms("record times must be timezone-aware")
    return math.floor(moment.timestamp())


def _canonical_operations(names: tuple[str, ...]) -> list[str]:
    if not names:
        raise InvalidTerms("a consent names at least one operation")
    if len(set(names)) != len(names):
        raise InvalidTerms("a consent names each operation once")
    for name in names:
        _require_operation(name)
    return [name for name in OPERATIONS if name in names]


def _require_operation(name: str) -> None:
    if name not in OPERATIONS:
        raise InvalidTerms(f"{name!r} is not an operation; known: {', '.join(OPERATIONS)}")


def _unique_sorted(values: tuple[str, ...], what: str) -> list[str]:
    if not values:
        raise InvalidTerms(f"{what} is None (any) or names at least one")
    for value in values:
        _require_text(value, what)
    if len(set(values)) != len(values):
        raise InvalidTerms(f"{what} names each entry once")
    return sorted(values)


def _require_id(value: str, prefix: str, what: str) -> None:
    if not isinstance(value, str) or not value.startswith(prefix + "_") or len(value) <= len(prefix) + 1:
        raise InvalidTerms(f"{what} must be a {prefix}_… id")


def _require_text(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidTerms(f"{what} must be a non-empty string")
