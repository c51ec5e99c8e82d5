"""Decisions: may this app run this edit now? The answer, its ticket and its audit entry, together.

Everything a decision changes (a use of each consent, the decision row, the audit entry, a risk
counter) is written in the caller's transaction, so it all commits together or not at all. A deny is
a normal result, not an exception: its audit entry must be committed like an allow's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from consent import jws
from consent.enforcement import enforce, subjects_of
from consent.journal import Journal, Party
from consent.policy import Decision, DecisionRequest
from consent.records import TICKET_MAX_LIFETIME, TICKET_TYP, TicketSpec, new_id, ticket_claims, whole_seconds
from consent.signing import Signer
from gateway.core.errors import GatewayError
from gateway.core.models import RateCounter
from gateway.decisions.models import OUTCOMES, DecisionRow
from gateway.registry.algorithms import get_algorithm, policy_view

__all__ = [
    "DecisionDenied",
    "DecisionError",
    "DecisionNotFound",
    "DecisionResult",
    "DecisionSettings",
    "OutcomeAlreadyRecorded",
    "RiskPolicy",
    "get_decision",
    "make_decision",
    "record_outcome",
]


class DecisionError(GatewayError):
    code: ClassVar[str] = "decision_error"


class DecisionNotFound(DecisionError):
    """No decision with this id for this app (another app's decision is not found either)."""

    code = "decision_not_found"


class DecisionDenied(DecisionError):
    """A denied decision ran nothing, so it has no outcome."""

    code = "decision_denied"


class OutcomeAlreadyRecorded(DecisionError):
    code = "outcome_already_recorded"


@dataclass(frozen=True)
class RiskPolicy:
    """``denials`` denied decisions of one app within ``window`` raise one ``risk.repeated_denials``."""

    denials: int = 10
    window: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class DecisionSettings:
    """How long tickets live and when repeated denials become a risk entry (from configuration)."""

    ticket_ttl: timedelta
    risk: RiskPolicy

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DecisionSettings:
        return cls(
            ticket_ttl=timedelta(seconds=int(config["TICKET_TTL_SECONDS"])),
            risk=RiskPolicy(denials=int(config["RISK_DENIALS_THRESHOLD"]),
                            window=timedelta(seconds=int(config["RISK_DENIALS_WINDOW_SECONDS"]))),
        )


@dataclass(frozen=True)
class DecisionResult:
    id: str
    request: DecisionRequest
    decision: Decision
    ticket: str | None = None
    ticket_expires_at: datetime | None = None


def make_decision(
    session: Session,
    request: DecisionRequest,
    *,
    signer: Signer,
    actor: Party,
    journal: Journal,
    now: datetime,
    settings: DecisionSettings,
) -> DecisionResult:
    """Decide, count the use on an allow, sign the ticket, record the decision and audit it.

    The signer is taken as an argument on purpose: a caller that cannot load the key fails before
    anything is decided, so no allow can exist without the means to sign its ticket.
    """
    ticket_ttl = settings.ticket_ttl
    if not timedelta(0) < ticket_ttl <= TICKET_MAX_LIFETIME:
        raise ValueError(f"a ticket lives more than 0 and at most {TICKET_MAX_LIFETIME}")
    algorithm = policy_view(get_algorithm(session, request.algorithm))
    enforcement = enforce(session, request, algorithm, now, journal)
    decision = enforcement.decision
    decision_id = new_id("dec")
    ticket: str | None = None
    expires_at: datetime | None = None
    if decision.allowed:
        # Whole seconds, so the stored expiry is exactly the ticket's NumericDate ``exp``.
        expires_at = whole_seconds(now) + ticket_ttl
        ticket = jws.sign(
            ticket_claims(
                TicketSpec(
                    decision_id=decision_id,
                    algorithm=request.algorithm,
                    client_id=request.client_id,
                    operation=request.operation,
                    consent_ids=request.consent_ids,
                    media=request.media,
                    issued_at=now,
                    expires_at=expires_at,
                ),
                issuer=signer.issuer,
            ),
            signer,
            TICKET_TYP,
        )
    session.add(
        DecisionRow(
            id=decision_id,
            client_id=request.client_id,
            operation=request.operation,
            algorithm=request.algorithm,
            consents=list(request.consent_ids),
            media=dict(request.media),
            allowed=decision.allowed,
            reason=None if decision.reason is None else decision.reason.value,
            created_at=now,
            ticket_expires_at=expires_at,
        )
    )
    # The audit entry names one consent (the one that failed, else the first) and its subject, so the
    # subject's processing history finds it; the full list is in ``consents``.
    named = decision.consent_id or (request.consent_ids[0] if request.consent_ids else None)
    journal.record(
        "decision.allowed" if decision.allowed else "decision.denied",
        actor,
        decision_id=decision_id,
        client_id=request.client_id,
        operation=request.operation,
        algorithm=request.algorithm,
        consent_id=named,
        subject=enforcement.subjects.get(named) if named else None,
        consents=list(request.consent_ids),
        media=dict(request.media),
        reason=None if decision.reason is None else decision.reason.value,
        detail=decision.detail or None,
    )
    if not decision.allowed:
        _count_denial(session, request.client_id, actor=actor, journal=journal, now=now, risk=settings.risk)
    return DecisionResult(decision_id, request, decision, ticket, expires_at)


def get_decision(session: Session, decision_id: str, *, client_id: str) -> DecisionRow:
    """The app's own decision; another app's decision does not exist as far as it can tell."""
    row = session.get(DecisionRow, decision_id)
    if row is None or row.client_id != client_id:
        raise DecisionNotFound(f"no decision {decision_id!r} for this app")
    return row


def record_outcome(
    session: Session,
    decision_id: str,
    *,
    client_id: str,
    outcome: str,
    output_sha256: str | None,
    actor: Party,
    journal: Journal,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
) -> DecisionRow:
    """Record once whether the edit an allowed decision authorised completed or failed."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome is one of {OUTCOMES}")
    row = get_decision(session, decision_id, client_id=client_id)
    if not row.allowed:
        raise DecisionDenied(f"decision {decision_id} was denied; nothing ran")
    # Conditional, so two concurrent reports cannot both be the first.
    written = session.execute(
        update(DecisionRow)
        .where(DecisionRow.id == decision_id, DecisionRow.outcome.is_(None))
        .values(outcome=outcome, output_sha256=output_sha256, outcome_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(written, "rowcount", 0) != 1:
        raise OutcomeAlreadyRecorded(f"decision {decision_id} already has an outcome")
    session.refresh(row)
    subjects = subjects_of(session, row.consents)
    named = row.consents[0] if row.consents else None
    journal.record(
        f"decision.{outcome}",
        actor,
        decision_id=decision_id,
        client_id=row.client_id,
        operation=row.operation,
        algorithm=row.algorithm,
        consent_id=named,
        subject=subjects.get(named) if named else None,
        consents=list(row.consents),
        outcome=outcome,
        output_sha256=output_sha256,
        **dict(extra or {}),
    )
    return row


def _count_denial(
    session: Session, client_id: str, *, actor: Party, journal: Journal, now: datetime, risk: RiskPolicy
) -> None:
    """Count a deny in a counter every gateway process shares; the one that hits the threshold audits.

    Exactly one ``risk.repeated_denials`` per app and window, whichever process denies the Nth time,
    because the increment and its result are one atomic statement.
    """
    window = int(risk.window.total_seconds())
    window_start = int(now.timestamp()) // window * window
    key = f"risk.denials:{client_id}"
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateCounter)
        .values(key=key, window_start=window_start, count=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.window_start],
            set_={"count": RateCounter.count + 1},
        )
        .returning(RateCounter.count)
    )
    count = session.execute(statement).scalar_one()
    if count == risk.denials:
        journal.record("risk.repeated_denials", actor, client_id=client_id,
                       detail={"denials": count, "window_seconds": window, "window_start": window_start})
