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
every process at once. A caller that reads the consents together with other facts (the gateway reads
them in one statement with the algorithm) passes the views to :func:`enforce_views`; the conditional
``UPDATE`` makes that read as safe as this module's own. Functions take the session and ``now``; the
caller commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from consent.errors import ConsentError
from consent.journal import SYSTEM, Journal
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

__all__ = [
    "FACTS",
    "USE",
    "Enforcement",
    "UnreadableConsentState",
    "UseTaker",
    "enforce",
    "enforce_views",
    "load_views",
    "subjects_of",
    "take_use",
    "view_of",
]

# Statements here are Core, on the table: nothing reads or changes an ORM object, and a decision is on
# every edit's path, where the ORM's bookkeeping would be most of the cost. They are built once, with
# bound parameters, so a decision runs them without building or coercing any expression.
_TABLE = Consent.metadata.tables[Consent.__tablename__]
_CONSENTS = _TABLE.c
# The columns the policy reads (a caller reading consents its own way selects these).
FACTS = (_CONSENTS.id, _CONSENTS.client_id, _CONSENTS.subject_id, _CONSENTS.status, _CONSENTS.operations,
         _CONSENTS.algorithms, _CONSENTS.not_before, _CONSENTS.expires_at, _CONSENTS.max_uses,
         _CONSENTS.uses, _CONSENTS.bindings)
_LOAD = select(*FACTS).where(_CONSENTS.id.in_(bindparam("consent_ids", expanding=True)))
_SUBJECTS = select(_CONSENTS.id, _CONSENTS.subject_id).where(
    _CONSENTS.id.in_(bindparam("consent_ids", expanding=True)))


class UnreadableConsentState(ConsentError):
    """A stored consent cannot be read as policy facts; nothing may be allowed on it."""

    code = "consent_state_unreadable"


@dataclass(frozen=True)
class Enforcement:
    """The decision and what the audit entry needs to name (subjects by pseudonymous id only)."""

    decision: Decision
    subjects: Mapping[str, str] = field(default_factory=dict)  # consent id -> sub_… of the named consents


def enforce(
    session: Session, request: DecisionRequest, algorithm: AlgorithmView | None, now: datetime,
    journal: Journal,
) -> Enforcement:
    """Decide ``request`` on the stored consents and, on an allow, take one use of each named consent.

    A deny changes no consent. The use that reaches ``max_uses`` ends the consent as ``exhausted``,
    written to ``journal`` like every other end of a consent. Raises :class:`UnreadableConsentState`
    when a named consent's stored state makes no sense (the gateway answers 503: fail closed).
    """
    return enforce_views(session, request, load_views(session, request.consent_ids), algorithm=algorithm, now=now,
                         journal=journal)


def enforce_views(
    session: Session, request: DecisionRequest, views: Sequence[ConsentView], *, algorithm: AlgorithmView | None,
    now: datetime, journal: Journal, take: UseTaker | None = None,
) -> Enforcement:
    """:func:`enforce` on consents the caller has just read (``views``: the named ones as stored).

    The read may have been outside this transaction: an allow is still only an allow if each use can
    be taken at the row, where status and count are checked again. ``take`` runs :data:`USE` (see
    :func:`take_use`, the default); a caller with a cheaper way to run the same statement passes it.
    """
    subjects = {view.id: view.subject_id for view in views}
    decision = decide(views, request, algorithm, now)
    if decision.allowed:
        decision = _take_uses(session, request, algorithm, now, journal, take=take or take_use)
    return Enforcement(decision=decision, subjects=subjects)


def load_views(session: Session, consent_ids: Sequence[str]) -> list[ConsentView]:
    """The named consents as the database has them now (no ORM identity map in between)."""
    if not consent_ids:
        return []
    rows = session.execute(_LOAD, {"consent_ids": list(consent_ids)})
    return [view_of(row) for row in rows]


def subjects_of(session: Session, consent_ids: Sequence[str]) -> dict[str, str]:
    """consent id -> pseudonymous subject id, for naming subjects in audit entries."""
    if not consent_ids:
        return {}
    rows = session.execute(_SUBJECTS, {"consent_ids": list(consent_ids)})
    return {row.id: row.subject_id for row in rows}


def view_of(row: Any) -> ConsentView:
    """The policy's view of a stored consent (a row or object with its columns), or
    :class:`UnreadableConsentState`."""
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
            bindings=_bound_modalities(row.bindings),
        )
    except (TypeError, ValueError) as exc:
        raise UnreadableConsentState(f"consent {row.id} cannot be read: {exc}") from exc


def _bound_modalities(bindings: Any) -> frozenset[str]:
    # A binding that cannot be read must not quietly drop the check: refuse to read the consent.
    if bindings is None:
        return frozenset()
    if not isinstance(bindings, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in bindings.items()):
        raise ValueError("bindings is not a map of modality to template digest")
    return frozenset(bindings)


def take_use(session: Session, params: Mapping[str, Any]) -> Any:
    """Run :data:`USE` in the session's transaction: the row it updated, or None if it refused."""
    return session.connection().execute(USE, dict(params)).first()


def _take_uses(
    session: Session, request: DecisionRequest, algorithm: AlgorithmView | None, now: datetime,
    journal: Journal, *, take: UseTaker,
) -> Decision:
    # With several consents, a savepoint gives back the uses already taken if a later one cannot be
    # used, while the caller's transaction (which records the deny) carries on. One consent needs
    # none: its refused UPDATE changed nothing.
    consent_ids = sorted(request.consent_ids)
    savepoint = session.begin_nested() if len(consent_ids) > 1 else None
    exhausted = []
    # Sorted, so two decisions naming the same consents lock them in the same order and cannot
    # deadlock each other on PostgreSQL.
    for consent_id in consent_ids:
        taken = take(session, {"consent_id": consent_id, "now": now})
        if taken is None:
            if savepoint is not None:
                savepoint.rollback()
            return _reason_after_race(session, request, algorithm, now, consent_id)
        if taken.status == ConsentStatus.EXHAUSTED.value:
            exhausted.append(taken)
    if savepoint is not None:
        savepoint.commit()
    for row in exhausted:
        journal.record("consent.exhausted", SYSTEM, client_id=row.client_id, subject=row.subject_id,
                       consent_id=row.id, detail={"uses": row.uses, "max_uses": row.max_uses})
    return ALLOW


def _use_statement() -> Any:
    """One use, only if the consent is active with a use left at the moment the row is written.

    The use that reaches the limit also ends the consent, in the same statement (every right-hand
    side reads the row as it was before the update, on SQLite and PostgreSQL alike). Parameters:
    ``consent_id`` and ``now``.
    """
    c = _CONSENTS
    reaches_limit = and_(c.max_uses.is_not(None), c.uses + 1 >= c.max_uses)
    return (
        update(_TABLE)
        .where(
            c.id == bindparam("consent_id"),
            c.status == ConsentStatus.ACTIVE.value,
            or_(c.max_uses.is_(None), c.uses < c.max_uses),
        )
        .values(
            uses=c.uses + 1,
            status=case((reaches_limit, ConsentStatus.EXHAUSTED.value), else_=c.status),
            ended_at=case((reaches_limit, bindparam("now", type_=c.ended_at.type)), else_=c.ended_at),
            ended_by=case((reaches_limit, "system"), else_=c.ended_by),
        )
        .returning(c.id, c.client_id, c.subject_id, c.status, c.uses, c.max_uses)
    )


# The conditional UPDATE that takes one use; it returns the consent's id, client_id, subject_id,
# status, uses and max_uses as written.
USE = _use_statement()
# Runs USE with its parameters in the session's transaction: the returned row, or None.
UseTaker = Callable[[Session, Mapping[str, Any]], Any]


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
