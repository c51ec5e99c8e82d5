"""Deciding against the stored consents, and counting the use of an allow atomically.

:func:`consent.policy.decide` is pure; this module is its database side. It loads the named consents
as policy views, decides, and on an allow takes one use of every named consent with a conditional
``UPDATE`` whose ``WHERE`` re-checks the status and the use count at the moment the row is written.
So:

- two concurrent decisions can never both take the last use (the database serialises writers on the
  row; the second ``UPDATE`` re-evaluates ``uses < max_uses`` and matches nothing);
- a withdrawal or revocation that has committed can never be followed by an allow, even if this
  decision read the consent just before it (the ``UPDATE`` re-reads ``status = 'active'``).

Nothing here is cached: every decision reads the rows, so a revocation in any process is seen by
every process at once. Functions take the session and ``now``; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from consent.errors import ConsentError
from consent.models import Consent
from consent.policy import (
    ALLOW,
    AlgorithmView,
    ConsentStatus,
    ConsentView,
    Decision,
    DecisionRequest,
    DenyReason,
    decide,
)

__all__ = ["Enforcement", "UnreadableConsentState", "enforce", "load_views", "subjects_of", "view_of"]


class UnreadableConsentState(ConsentError):
    """A stored consent cannot be read as policy facts; nothing may be allowed on it."""

    code = "consent_state_unreadable"


@dataclass(frozen=True)
class Enforcement:
    """The decision and what the audit entry needs to name (subjects by pseudonymous id only)."""

    decision: Decision
    subjects: Mapping[str, str] = field(default_factory=dict)  # consent id -> sub_… of the named consents


def enforce(
    session: Session, request: DecisionRequest, algorithm: AlgorithmView | None, now: datetime
) -> Enforcement:
    """Decide ``request`` on the stored consents and, on an allow, take one use of each named consent.

    A deny changes no consent. Raises :class:`UnreadableConsentState` when a named consent's stored
    state makes no sense (the gateway answers 503: fail closed).
    """
    views = load_views(session, request.consent_ids)
    subjects = {view.id: view.subject_id for view in views}
    decision = decide(views, request, algorithm, now)
    if decision.allowed:
        decision = _take_uses(session, request, algorithm, now)
    return Enforcement(decision=decision, subjects=subjects)


def load_views(session: Session, consent_ids: Sequence[str]) -> list[ConsentView]:
    if not consent_ids:
        return []
    rows = session.scalars(
        select(Consent)
        .where(Consent.id.in_(list(consent_ids)))
        # Always the row as the database has it now, never an object this session read earlier.
        .execution_options(populate_existing=True)
    )
    return [view_of(row) for row in rows]


def subjects_of(session: Session, consent_ids: Sequence[str]) -> dict[str, str]:
    """consent id -> pseudonymous subject id, for naming subjects in audit entries."""
    if not consent_ids:
        return {}
    rows = session.execute(select(Consent.id, Consent.subject_id).where(Consent.id.in_(list(consent_ids))))
    return {row.id: row.subject_id for row in rows}


def view_of(row: Consent) -> ConsentView:
    """The policy's view of a stored consent, or :class:`UnreadableConsentState`."""
    try:
        operations = _names(row.operations)
        algorithms = None if row.algorithms is None else _names(row.algorithms)
        return ConsentView(
            id=row.id,
            client_id=row.client_id,
            subject_id=row.subject_id,
            status=row.status,
            operations=operations,
            algorithms=algorithms,
            not_before=_aware(row.not_before),
            expires_at=_aware(row.expires_at),
            max_uses=_count(row.max_uses, nullable=True),
            uses=_count(row.uses, nullable=False) or 0,
        )
    except (TypeError, ValueError) as exc:
        raise UnreadableConsentState(f"consent {row.id} cannot be read: {exc}") from exc


def _take_uses(
    session: Session, request: DecisionRequest, algorithm: AlgorithmView | None, now: datetime
) -> Decision:
    # One savepoint for all named consents: if the second cannot be used, the first one's use is
    # given back, while the caller's transaction (which records the deny) carries on.
    savepoint = session.begin_nested()
    # A fixed order, so two decisions naming the same consents lock them in the same order and
    # cannot deadlock each other on PostgreSQL.
    for consent_id in sorted(request.consent_ids):
        taken = session.execute(
            update(Consent)
            .where(
                Consent.id == consent_id,
                Consent.status == ConsentStatus.ACTIVE.value,
                or_(Consent.max_uses.is_(None), Consent.uses < Consent.max_uses),
            )
            .values(uses=Consent.uses + 1)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(taken) != 1:
            savepoint.rollback()
            return _reason_after_race(session, request, algorithm, now, consent_id)
        # The use that reaches the limit also ends the consent, in the same transaction.
        session.execute(
            update(Consent)
            .where(
                Consent.id == consent_id,
                Consent.status == ConsentStatus.ACTIVE.value,
                Consent.max_uses.is_not(None),
                Consent.uses >= Consent.max_uses,
            )
            .values(status=ConsentStatus.EXHAUSTED.value, ended_at=now)
            .execution_options(synchronize_session=False)
        )
    savepoint.commit()
    return ALLOW


def _reason_after_race(
    session: Session, request: DecisionRequest, algorithm: AlgorithmView | None, now: datetime,
    consent_id: str,
) -> Decision:
    """Why a consent that looked usable could not be used: a concurrent change won the row."""
    decision = decide(load_views(session, request.consent_ids), request, algorithm, now)
    if not decision.allowed:
        return decision
    # The row refused the use but reads as usable: the state is not what it seems, so deny.
    return Decision(allowed=False, reason=DenyReason.CONSENT_EXHAUSTED, consent_id=consent_id,
                    detail="the use could not be counted")


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count


def _names(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of names")
    return frozenset(value)


def _count(value: object, *, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer count")
    return value


def _aware(moment: object) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError("expected a timestamp")
    # SQLite keeps no UTC offset; every time the gateway stores is UTC, so a naive value is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
