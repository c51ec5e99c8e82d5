"""The decision policy: may this app run this operation with this algorithm under these consents, now?

:func:`decide` is a pure function of views the gateway loads inside its unit of work. It never reads a
clock or a database, so the same inputs always give the same decision and every branch is testable.

Precedence (the first failing check is the decision; it fails closed, so anything it cannot read as
"permitted" denies):

1. ``missing_consent``: the request names no consent.
2. ``algorithm_not_registered``: no registered algorithm, a view of another filing number, or an
   algorithm that is not registered for the requested operation.
3. ``algorithm_suspended``: the algorithm's status is not ``active`` (``suspended`` or any value this
   policy does not know).
4. Then every consent the request names must pass each of the following checks. The checks run one
   after another, each over all named consents in the order the request names them, so a problem
   earlier in this list wins over a later one whichever consent has it, and ``consent_id`` names the
   first consent that failed it:

   a. ``consent_not_found``: no view with that id, or more than one (ambiguous).
   b. ``consent_not_for_client``: granted to another client. Checked before any state, so an app
      never learns the state of another app's consent.
   c. status: ``withdrawn`` → ``consent_withdrawn``, ``revoked`` → ``consent_revoked``, ``expired`` →
      ``consent_expired``, ``exhausted`` → ``consent_exhausted``; a status this policy does not know
      → ``consent_revoked`` (no longer usable; ``detail`` names the status).
   d. ``consent_expired``: ``active`` but ``now`` is before ``not_before`` or at/after ``expires_at``
      (the stored status may lag the clock).
   e. ``consent_exhausted``: ``uses >= max_uses``, or a use count that cannot be right (negative uses,
      ``max_uses`` below 1).
   f. ``operation_not_consented``: the operation is not among the consent's operations.
   g. ``algorithm_not_consented``: the consent names algorithms and not this one.
   h. biometric binding, for a consent granted with a template of the operation's modality (its
      ``bindings``): ``binding_requires_media`` when the request carries no binding check (decision
      mode: the gateway never saw the media), else the check's own failure (``biometric_mismatch``,
      ``no_face_found``, ``biometric_not_enrolled``).

5. A binding check that failed denies even when no named consent requires binding: the gateway looked
   and found a face that belongs to nobody who consented, a picture sent to a voice operation
   (``media_not_covered``) or a part that is no readable media (``unreadable_media``).

Each named consent stands for one person whose face or voice is edited, so one unusable consent
denies the whole request. Consents passed in but not named by the request are ignored.

An allow is not yet a use: the gateway must count it with a conditional update (``uses < max_uses``)
in the same transaction, or two concurrent decisions could both take the last use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from consent.errors import InvalidTerms
from consent.operations import operation as catalogue_entry


class DenyReason(StrEnum):
    """The stable deny codes of DESIGN.md; values never change once released."""

    MISSING_CONSENT = "missing_consent"
    ALGORITHM_NOT_REGISTERED = "algorithm_not_registered"
    ALGORITHM_SUSPENDED = "algorithm_suspended"
    CONSENT_NOT_FOUND = "consent_not_found"
    CONSENT_NOT_FOR_CLIENT = "consent_not_for_client"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_EXHAUSTED = "consent_exhausted"
    OPERATION_NOT_CONSENTED = "operation_not_consented"
    ALGORITHM_NOT_CONSENTED = "algorithm_not_consented"
    BINDING_REQUIRES_MEDIA = "binding_requires_media"
    BIOMETRIC_MISMATCH = "biometric_mismatch"
    NO_FACE_FOUND = "no_face_found"
    BIOMETRIC_NOT_ENROLLED = "biometric_not_enrolled"
    MEDIA_NOT_COVERED = "media_not_covered"
    UNREADABLE_MEDIA = "unreadable_media"


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    REVOKED = "revoked"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"


class AlgorithmStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class ConsentView:
    """What the policy needs to know about one stored consent. ``status`` is the raw stored value."""

    id: str
    client_id: str
    subject_id: str
    status: str
    operations: frozenset[str]
    algorithms: frozenset[str] | None  # filing numbers; None = any registered algorithm
    not_before: datetime
    expires_at: datetime
    max_uses: int | None
    uses: int
    # Modalities whose template the consent was granted with: media edited under it must be checked.
    bindings: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _require_aware(self.not_before, "not_before")
        _require_aware(self.expires_at, "expires_at")


@dataclass(frozen=True)
class AlgorithmView:
    filing_number: str
    status: str
    operations: frozenset[str]


@dataclass(frozen=True)
class BindingCheck:
    """What the gateway found when it compared the media with the named subjects' templates.

    Only the proxy can make one (it holds the media). ``failure`` None: every face or voice found
    matched a template of a subject whose consent is named.
    """

    modality: str
    failure: DenyReason | None = None
    consent_id: str | None = None  # the consent the failure concerns, when one does
    detail: str = ""  # which part, frame or segment; distance and threshold (never a template)


@dataclass(frozen=True)
class DecisionRequest:
    """What an app asks for. Construction refuses requests that are malformed rather than denied."""

    client_id: str
    operation: str
    algorithm: str  # filing number
    consent_ids: tuple[str, ...]
    media: Mapping[str, str]  # role -> SHA-256 hex, carried into the ticket
    binding: BindingCheck | None = None  # None: nobody compared the media with templates

    def __post_init__(self) -> None:
        catalogue_entry(self.operation)
        if len(set(self.consent_ids)) != len(self.consent_ids):
            # Naming a consent twice would count two uses of it for one edit.
            raise InvalidTerms("a decision request names each consent once")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: DenyReason | None = None
    consent_id: str | None = None  # the consent that failed, when one did
    detail: str = ""  # for the audit log and operators; clients get ``reason``

    def __post_init__(self) -> None:
        if self.allowed == (self.reason is not None):
            raise ValueError("a decision allows with no reason or denies with one")


ALLOW = Decision(allowed=True)

_STATUS_REASONS = {
    ConsentStatus.WITHDRAWN.value: DenyReason.CONSENT_WITHDRAWN,
    ConsentStatus.REVOKED.value: DenyReason.CONSENT_REVOKED,
    ConsentStatus.EXPIRED.value: DenyReason.CONSENT_EXPIRED,
    ConsentStatus.EXHAUSTED.value: DenyReason.CONSENT_EXHAUSTED,
}

# A check looks at one named consent and returns why it cannot be used, if it cannot.
_Failure = tuple[DenyReason, str]
_Check = Callable[[ConsentView, DecisionRequest, datetime], "_Failure | None"]


def decide(
    consents: Sequence[ConsentView],
    request: DecisionRequest,
    algorithm: AlgorithmView | None,
    now: datetime,
) -> Decision:
    """Decide ``request`` against the stored ``consents`` and ``algorithm`` at ``now`` (see module doc)."""
    _require_aware(now, "now")
    if not request.consent_ids:
        return _deny(DenyReason.MISSING_CONSENT, None, "the request names no consent")
    failure = _algorithm_failure(request, algorithm)
    if failure is not None:
        return _deny(failure[0], None, failure[1])
    views: list[ConsentView] = []
    for consent_id in request.consent_ids:
        view = _only_view(consents, consent_id)
        if view is None:
            return _deny(DenyReason.CONSENT_NOT_FOUND, consent_id, f"no single consent {consent_id!r}")
        views.append(view)
    for check in _CONSENT_CHECKS:
        for view in views:
            failure = check(view, request, now)
            if failure is not None:
                return _deny(failure[0], view.id, failure[1])
    binding = request.binding
    if binding is not None and binding.failure is not None:
        return _deny(binding.failure, binding.consent_id, binding.detail)
    return ALLOW


def _algorithm_failure(request: DecisionRequest, algorithm: AlgorithmView | None) -> _Failure | None:
    if algorithm is None or algorithm.filing_number != request.algorithm:
        return DenyReason.ALGORITHM_NOT_REGISTERED, f"{request.algorithm!r} is not registered"
    if request.operation not in algorithm.operations:
        return (
            DenyReason.ALGORITHM_NOT_REGISTERED,
            f"{request.algorithm!r} is not registered for {request.operation}",
        )
    if algorithm.status != AlgorithmStatus.ACTIVE:
        return DenyReason.ALGORITHM_SUSPENDED, f"algorithm status is {algorithm.status!r}"
    return None


def _only_view(consents: Sequence[ConsentView], consent_id: str) -> ConsentView | None:
    matches = [view for view in consents if view.id == consent_id]
    # Two views with one id means the caller's data is inconsistent: treat it as not found.
    return matches[0] if len(matches) == 1 else None


def _for_client(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if view.client_id != request.client_id:
        return DenyReason.CONSENT_NOT_FOR_CLIENT, "the consent was granted to another client"
    return None


def _status(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if view.status == ConsentStatus.ACTIVE:
        return None
    reason = _STATUS_REASONS.get(view.status, DenyReason.CONSENT_REVOKED)
    return reason, f"consent status is {view.status!r}"


def _validity(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if now < view.not_before:
        return DenyReason.CONSENT_EXPIRED, "the consent is not valid yet"
    if now >= view.expires_at:
        return DenyReason.CONSENT_EXPIRED, "the consent's validity period has ended"
    return None


def _uses(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if view.uses < 0 or (view.max_uses is not None and view.max_uses < 1):
        return DenyReason.CONSENT_EXHAUSTED, f"use count {view.uses}/{view.max_uses} cannot be right"
    if view.max_uses is not None and view.uses >= view.max_uses:
        return DenyReason.CONSENT_EXHAUSTED, f"all {view.max_uses} uses are taken"
    return None


def _operation(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if request.operation not in view.operations:
        return DenyReason.OPERATION_NOT_CONSENTED, f"{request.operation} is not consented"
    return None


def _algorithm(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    if view.algorithms is not None and request.algorithm not in view.algorithms:
        return (
            DenyReason.ALGORITHM_NOT_CONSENTED,
            f"{request.algorithm!r} is not among the consented algorithms",
        )
    return None


def _binding(view: ConsentView, request: DecisionRequest, now: datetime) -> _Failure | None:
    modality = catalogue_entry(request.operation).modality.value
    if modality not in view.bindings:
        return None
    if request.binding is None:
        return (DenyReason.BINDING_REQUIRES_MEDIA,
                f"the consent requires {modality} binding: send the media through POST /v1/edits")
    if request.binding.failure is not None:
        return request.binding.failure, request.binding.detail
    return None


_CONSENT_CHECKS: tuple[_Check, ...] = (_for_client, _status, _validity, _uses, _operation, _algorithm, _binding)


def _deny(reason: DenyReason, consent_id: str | None, detail: str) -> Decision:
    return Decision(allowed=False, reason=reason, consent_id=consent_id, detail=detail)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
