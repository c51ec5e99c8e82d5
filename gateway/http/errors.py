"""Every domain and gateway error → HTTP, declared once: status, and what the answer adds.

The most specific class listed first wins. The problem's ``code`` is the exception's own stable
``code`` and its detail the message, unless a rule says otherwise (fail-closed answers say plainly
that nothing was allowed, and ask the caller to retry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from audit.errors import AuditError
from audit.proofs import ProofUnavailable
from audit.queries import BadCursor
from consent import errors as consent_errors
from consent.enforcement import UnreadableConsentState
from gateway.auditing.export import InvalidRange
from gateway.biometrics.faces import BiometricsUnavailable
from gateway.consents.services import RateLimited
from gateway.core.errors import GatewayError
from gateway.core.problems import Problem
from gateway.decisions.service import DecisionDenied, DecisionError, DecisionNotFound, OutcomeAlreadyRecorded
from gateway.keys.store import KeyStoreError
from gateway.proxy.edits import NoMedia
from gateway.proxy.uploads import NotMultipart, StorageFull, UploadError
from gateway.registry.algorithms import AlgorithmNotFound, FilingNumberTaken, InvalidAlgorithm, RegistryError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    status: int
    # Fail-closed answers replace the message (which may name internals) and are logged as errors.
    detail: str | None = None
    retry_after: int | None = None


_UNAVAILABLE = 5

RULES: dict[type[Exception], Rule] = {
    # consent domain: 404 for "not yours" as much as for "does not exist"
    consent_errors.RequestNotFound: Rule(404),
    consent_errors.ConsentNotFound: Rule(404),
    consent_errors.IdempotencyConflict: Rule(409),
    consent_errors.RequestNotPending: Rule(409),
    consent_errors.ConsentNotActive: Rule(409),
    consent_errors.NoticeChanged: Rule(409),
    consent_errors.UnknownOperation: Rule(422),
    consent_errors.InvalidTerms: Rule(422),
    consent_errors.InvalidContact: Rule(422),
    consent_errors.AlgorithmNotAvailable: Rule(422),
    consent_errors.RedirectNotRegistered: Rule(422),
    consent_errors.SubjectMismatch: Rule(422),
    consent_errors.NoOperationChosen: Rule(422),
    UnreadableConsentState: Rule(503, "a named consent cannot be read; nothing was allowed", _UNAVAILABLE),
    # audit domain
    BadCursor: Rule(400),
    ProofUnavailable: Rule(404),
    AuditError: Rule(422),
    # the gateway's own
    KeyStoreError: Rule(503, "the signing key is unavailable; nothing was signed or allowed", _UNAVAILABLE),
    BiometricsUnavailable: Rule(503, "biometric binding is needed and not available here; nothing was allowed",
                                _UNAVAILABLE),
    InvalidAlgorithm: Rule(422),
    FilingNumberTaken: Rule(409),
    AlgorithmNotFound: Rule(404),
    RegistryError: Rule(400),
    DecisionNotFound: Rule(404),
    DecisionDenied: Rule(409),
    OutcomeAlreadyRecorded: Rule(409),
    DecisionError: Rule(400),
    NotMultipart: Rule(415),
    # A full upload folder is temporary (RFC 4918's 507): the app may retry, nothing was decided.
    StorageFull: Rule(507, retry_after=30),
    UploadError: Rule(400),
    NoMedia: Rule(422),
    InvalidRange: Rule(400),
    RateLimited: Rule(429),
}


def problem_for(exc: Exception) -> Problem | None:
    """The problem a known error becomes, or None for anything the table does not name."""
    if not isinstance(exc, consent_errors.ConsentError | AuditError | GatewayError):
        return None
    rule = next((r for t, r in RULES.items() if isinstance(exc, t)), None)
    if rule is None:
        return None
    if rule.detail is not None:
        log.error("fail closed: %s", exc)
    headers: dict[str, str] = {}
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else rule.retry_after
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    extra: dict[str, Any] = {}
    if isinstance(exc, consent_errors.RequestNotPending | consent_errors.ConsentNotActive):
        extra["current_status"] = exc.status
    return Problem(rule.status, exc.code, rule.detail or str(exc), headers=headers, **extra)
