"""Decisions: may this app run this edit now? The answer, its ticket and its audit entry, together.

Everything a decision changes (a use of each consent, the decision row, the audit entry, a risk
counter) is written in the caller's transaction, so it all commits together or not at all. A deny is
a normal result, not an exception: its audit entry must be committed like an allow's.

A decision is on the path of every edit, so it is built to be cheap: the facts (the named consents and
the algorithm, whatever its status) are one prebuilt statement, marked standalone so that on SQLite it
runs before the write lock is taken; the ticket is signed before anything is written; then the writes
(the conditional UPDATE that takes each use and re-checks status and count at the row, the decision
row, the audit entry) are a short write transaction. Nothing is cached: the algorithm's status and the
consents are read on every decision, so a suspension or a withdrawal committed in any process is seen
by the next decision everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import bindparam, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.models import QueuedEntry
from consent import jws
from consent.enforcement import FACTS, USE, enforce_views, subjects_of, view_of
from consent.journal import Journal, Party
from consent.models import Consent
from consent.policy import ALLOW, AlgorithmView, ConsentView, Decision, DecisionRequest, decide
from consent.records import TICKET_MAX_LIFETIME, TICKET_TYP, TicketSpec, new_id, ticket_claims, whole_seconds
from consent.signing import Signer
from gateway.auditing import runner as audit_runner
from gateway.auditing.trail import AuditJournal
from gateway.core.db import standalone
from gateway.core.errors import GatewayError
from gateway.core.models import RateCounter
from gateway.core.prepared import Prepared
from gateway.decisions.models import OUTCOMES, DecisionRow
from gateway.registry import algorithms as registry
from gateway.registry.models import Algorithm

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
    views, algorithm = _read_facts(session, request)
    decision_id = new_id("dec")
    row: dict[str, Any] = {
        "id": decision_id, "client_id": request.client_id, "operation": request.operation,
        "algorithm": request.algorithm, "consents": list(request.consent_ids), "media": dict(request.media),
        "created_at": now, "outcome": None, "output_sha256": None, "outcome_at": None,
    }
    subjects = {view.id: view.subject_id for view in views}
    ticket: str | None = None
    expires_at: datetime | None = None
    queued: dict[str, Any] | None = None
    if decide(views, request, algorithm, now).allowed:
        # Everything an allow writes is made before anything is written (on SQLite, before the write
        # lock is taken): the ticket is signed and the audit entry built. If the use then cannot be
        # taken (a withdrawal won the row), both are thrown away unseen and the deny is recorded.
        # Whole seconds, so the stored expiry is exactly the ticket's NumericDate ``exp``.
        expires_at = whole_seconds(now) + ticket_ttl
        ticket = _sign_ticket(request, decision_id, signer, now, expires_at)
        queued = _built_ahead(journal, actor, decision_id, request, decision=ALLOW, subjects=subjects)
    decision = enforce_views(session, request, views, algorithm=algorithm, now=now, journal=journal,
                             take=_take_use).decision
    row["allowed"] = decision.allowed
    row["reason"] = None if decision.reason is None else decision.reason.value
    row["ticket_expires_at"] = expires_at if decision.allowed else None
    if decision.allowed and queued is not None:
        if session.new:
            session.flush()  # an entry recorded on the way (the last use ends the consent) keeps its place
        _insert_allowed(session, row, queued)
        audit_runner.queued(session)
    else:
        _INSERT_DECISION.run(session.connection(), row)
        _record(journal, actor, decision_id, request, decision=decision, subjects=subjects)
    if not decision.allowed:
        ticket = expires_at = None
        _count_denial(session, request.client_id, actor=actor, journal=journal, now=now, risk=settings.risk)
    return DecisionResult(decision_id, request, decision, ticket, expires_at)


def _record(journal: Journal, actor: Party, decision_id: str, request: DecisionRequest, *, decision: Decision,
            subjects: Mapping[str, str]) -> None:
    action, fields = _entry(decision_id, request, decision=decision, subjects=subjects)
    journal.record(action, actor, **fields)


def _entry(decision_id: str, request: DecisionRequest, *, decision: Decision,
           subjects: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The decision's audit entry: its action and members."""
    # The entry names one consent (the one that failed, else the first) and its subject, so the
    # subject's processing history finds it; the full list is in ``consents``.
    named = decision.consent_id or (request.consent_ids[0] if request.consent_ids else None)
    return "decision.allowed" if decision.allowed else "decision.denied", {
        "decision_id": decision_id,
        "client_id": request.client_id,
        "operation": request.operation,
        "algorithm": request.algorithm,
        "consent_id": named,
        "subject": subjects.get(named) if named else None,
        "consents": list(request.consent_ids),
        "media": dict(request.media),
        "reason": None if decision.reason is None else decision.reason.value,
        "detail": decision.detail or None,
    }


def _built_ahead(journal: Journal, actor: Party, decision_id: str, request: DecisionRequest, *,
                 decision: Decision, subjects: Mapping[str, str]) -> dict[str, Any] | None:
    """The audit queue row of this decision's entry, built now, exactly as the journal would queue it.

    The caller inserts it in its own transaction with a prebuilt statement, skipping the ORM's unit of
    work (which cost more than the insert itself). None for a journal that is not the audit trail's:
    the entry is then recorded the ordinary way.
    """
    if not isinstance(journal, AuditJournal):
        return None
    action, fields = _entry(decision_id, request, decision=decision, subjects=subjects)
    return journal.queue_row(action, actor, **fields)


def _insert_allowed(session: Session, row: dict[str, Any], queued: dict[str, Any]) -> None:
    """The decision row and its audit queue row: one statement on PostgreSQL (one round trip), two on SQLite."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _INSERT_BOTH.run(connection, {**row, "queued_ts": queued["ts"], "queued_body": queued["body"]})
    else:
        _INSERT_DECISION.run(connection, row)
        _INSERT_QUEUED.run(connection, queued)


def _sign_ticket(request: DecisionRequest, decision_id: str, signer: Signer, now: datetime,
                 expires_at: datetime) -> str:
    spec = TicketSpec(decision_id=decision_id, algorithm=request.algorithm, client_id=request.client_id,
                      operation=request.operation, consent_ids=request.consent_ids, media=request.media,
                      issued_at=now, expires_at=expires_at,
                      binding="checked" if request.binding is not None and request.binding.failure is None
                      else "not_checked")
    return jws.sign(ticket_claims(spec, issuer=signer.issuer), signer, TICKET_TYP)


def _facts_statement(*, one: bool) -> Any:
    """The algorithm (whatever its status) and the named consents, in one statement.

    A one-row anchor outer-joined to both, so the answer has a row even when neither exists: one row
    per named consent found, each carrying the algorithm's columns (NULL when it is not registered).
    Parameters: ``filing_number`` and ``consent_ids`` (a list), or ``consent_id`` when ``one``: most
    decisions name one consent, and a list parameter is expanded into the SQL on every execution.
    """
    algorithms = Algorithm.metadata.tables[Algorithm.__tablename__]
    consents = Consent.metadata.tables[Consent.__tablename__]
    named = (consents.c.id == bindparam("consent_id") if one
             else consents.c.id.in_(bindparam("consent_ids", expanding=True)))
    anchor = select(literal_column("1").label("one")).subquery("anchor")
    joined = anchor.outerjoin(algorithms, algorithms.c.filing_number == bindparam("filing_number")).outerjoin(
        consents, named)
    return standalone(
        select(algorithms.c.filing_number.label("algorithm_filing_number"),
               algorithms.c.status.label("algorithm_status"),
               algorithms.c.operations.label("algorithm_operations"),
               *FACTS)
        .select_from(joined)
    )


def _inserts() -> tuple[Prepared, Prepared, Prepared]:
    """Prebuilt inserts: the decision row, the audit queue row, and both in one statement (PostgreSQL)."""
    decisions = DecisionRow.metadata.tables[DecisionRow.__tablename__]
    queue = QueuedEntry.metadata.tables[QueuedEntry.__tablename__]
    decision = insert(decisions).values({c.name: bindparam(c.name, type_=c.type) for c in decisions.c})
    queued = insert(queue).values(ts=bindparam("ts", type_=queue.c.ts.type),
                                  body=bindparam("body", type_=queue.c.body.type))
    # INSERT … SELECT, so the queue's id is left to its sequence (a CTE's VALUES would name every column).
    both = decision.add_cte(insert(queue).from_select(
        ["ts", "body"], select(bindparam("queued_ts", type_=queue.c.ts.type),
                               bindparam("queued_body", type_=queue.c.body.type))).cte("queued"))
    return Prepared(decision), Prepared(queued), Prepared(both)


_FACTS_OF_ONE, _FACTS_OF_MANY = Prepared(_facts_statement(one=True)), _facts_statement(one=False)
_INSERT_DECISION, _INSERT_QUEUED, _INSERT_BOTH = _inserts()


_TAKE_USE = Prepared(USE)


def _take_use(session: Session, params: Mapping[str, Any]) -> Any:
    """consent's conditional UPDATE, run as a prebuilt statement (see :func:`consent.enforcement.take_use`)."""
    rows = _TAKE_USE.rows(session.connection(), params)
    return rows[0] if rows else None


def _read_facts(session: Session, request: DecisionRequest) -> tuple[list[ConsentView], AlgorithmView | None]:
    ids = request.consent_ids
    connection = session.connection()
    rows: Sequence[Any]
    if len(ids) == 1:
        rows = _FACTS_OF_ONE.rows(connection, {"filing_number": request.algorithm, "consent_id": ids[0]})
    else:
        rows = connection.execute(_FACTS_OF_MANY, {"filing_number": request.algorithm, "consent_ids": list(ids)}).all()
    first = rows[0] if rows else None
    algorithm = None
    if first is not None and first.algorithm_filing_number is not None:
        algorithm = registry.view_of(first.algorithm_filing_number, first.algorithm_status,
                                     first.algorithm_operations)
    return [view_of(row) for row in rows if row.id is not None], algorithm


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
