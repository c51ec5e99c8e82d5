"""Consents from grant to end: sign the record, withdraw or revoke with a signed revocation, expire.

States follow DPV / ISO/IEC TS 27560: ``active`` → ``withdrawn`` (by the subject) | ``revoked`` (by the
app or an admin) | ``expired`` | ``exhausted``. Only ``active`` permits processing.

Every state change is a conditional UPDATE on the stored status (``WHERE status = 'active'``), so two
racing writers — a withdrawal and a lazy expiry, or two withdrawals, or a decision counting a use in
another process — cannot both win, and exactly one audit entry describes what happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from consent import jws
from consent.errors import ConsentNotActive, ConsentNotFound, InvalidTerms, NoOperationChosen, NoticeChanged
from consent.journal import SYSTEM, Journal, Party
from consent.models import (
    CONSENT_ACTIVE,
    CONSENT_EXHAUSTED,
    CONSENT_EXPIRED,
    CONSENT_REVOKED,
    CONSENT_WITHDRAWN,
    REQUEST_GRANTED,
    Consent,
    ConsentRequest,
)
from consent.operations import OPERATIONS
from consent.records import (
    CONSENT_TYP,
    REVOCATION_TYP,
    Collection,
    ConsentRecordSpec,
    Notice,
    RevocationRecordSpec,
    RevokedBy,
    consent_claims,
    new_id,
    revocation_claims,
    whole_seconds,
)
from consent.requests import bind_subject, require_pending
from consent.signing import Signer

JURISDICTION = "CN"
# Separate consent for sensitive (biometric) personal information, and the deep-synthesis rule that
# the person whose face or voice is edited must consent.
LEGAL_BASIS = "PIPL Art. 29 separate consent; Deep Synthesis Provisions Art. 14"
COLLECTION_METHOD = "hosted_consent_screen"

@dataclass(frozen=True)
class TemplateEvidence:
    """Names the template a consent is granted with: the model that made it and its SHA-256 (hex)."""

    model: str
    sha256: str


@dataclass(frozen=True)
class Approval:
    """What the subject approved on the consent screen."""

    subject_id: str
    operations: tuple[str, ...]  # the ticked ones
    notice: Notice  # version, SHA-256 and locale of the notice that was rendered for them
    presented_notice_sha256: str  # what the form they submitted says they read
    authn: str  # how control of the contact was proved, e.g. "email_otp"
    authenticated_at: datetime
    # Biometric binding: the templates enrolled for this consent, by modality.
    templates: Mapping[str, TemplateEvidence] = field(default_factory=dict)



def check_approval(request: ConsentRequest, approval: Approval) -> None:
    """Refuse an approval that ticks nothing, ticks what was not asked, or was made on another notice."""
    if not approval.operations:
        raise NoOperationChosen("tick at least one operation, or decline")
    extra = [name for name in approval.operations if name not in request.operations]
    if extra:
        # The form offered only the request's operations; anything else is a forged submission.
        raise InvalidTerms(f"operation(s) not asked for: {', '.join(extra)}")
    if approval.presented_notice_sha256 != approval.notice.sha256:
        raise NoticeChanged("the notice changed since it was shown; please read it again")


def grant(
    session: Session,
    request: ConsentRequest,
    approval: Approval,
    *,
    signer: Signer,
    journal: Journal,
    now: datetime,
) -> Consent:
    """Sign the consent record for the ticked operations and mark the request granted."""
    require_pending(session, request, journal, now)
    bind_subject(request, approval.subject_id)
    check_approval(request, approval)

    consent_id = new_id("cns")
    # Floored like the record's ``exp``: the stored expiry is exactly the one the signed record states,
    # so the consent is not honoured for a fraction of a second past it.
    expires_at = whole_seconds(now) + timedelta(days=request.duration_days)
    operations = tuple(name for name in OPERATIONS if name in approval.operations)
    claims = consent_claims(
        ConsentRecordSpec(
            consent_id=consent_id,
            request_id=request.id,
            subject_id=approval.subject_id,
            client_id=request.client_id,
            issued_at=now,
            not_before=now,
            expires_at=expires_at,
            operations=operations,
            purpose=request.purpose,
            algorithms=None if request.algorithms is None else tuple(request.algorithms),
            max_uses=request.max_uses,
            notice=approval.notice,
            collection=Collection(method=COLLECTION_METHOD, authn=approval.authn, at=now),
            jurisdiction=JURISDICTION,
            legal_basis=LEGAL_BASIS,
            supersedes=request.supersedes,
            evidence={"authenticated_at": int(approval.authenticated_at.timestamp()),
                      **{modality: {"model": t.model, "template_sha256": t.sha256}
                         for modality, t in sorted(approval.templates.items())}},
        ),
        issuer=signer.issuer,
    )
    consent = Consent(
        id=consent_id,
        request_id=request.id,
        client_id=request.client_id,
        subject_id=approval.subject_id,
        status=CONSENT_ACTIVE,
        operations=list(claims["consent"]["operations"]),
        modalities=list(claims["consent"]["modalities"]),
        algorithms=claims["consent"]["algorithms"],
        purpose=request.purpose,
        max_uses=request.max_uses,
        uses=0,
        not_before=now,
        expires_at=expires_at,
        record=jws.sign(claims, signer, CONSENT_TYP),
        revocation=None,
        supersedes=request.supersedes,
        created_at=now,
        subject_reference=request.subject_reference,
        bindings={modality: t.sha256 for modality, t in approval.templates.items()} or None,
    )
    session.add(consent)
    request.status = REQUEST_GRANTED
    request.decided_at = now
    request.consent_id = consent_id
    journal.record(
        "consent.granted",
        Party("subject", approval.subject_id),
        client_id=request.client_id,
        subject=approval.subject_id,
        consent_id=consent_id,
        consent_request_id=request.id,
        detail={
            "operations": consent.operations,
            "declined_operations": [name for name in request.operations if name not in operations],
            "algorithms": consent.algorithms,
            "expires_at": int(expires_at.timestamp()),
            "max_uses": consent.max_uses,
            "notice": {"version": approval.notice.version, "sha256": approval.notice.sha256,
                       "locale": approval.notice.locale},
            "supersedes": request.supersedes,
            **({"bindings": consent.bindings} if consent.bindings else {}),
        },
    )
    if request.supersedes is not None:
        _end_superseded(session, request.supersedes, consent, signer=signer, journal=journal, now=now)
    return consent


def withdraw(
    session: Session,
    consent: Consent,
    *,
    reason: str,
    actor: Party,
    signer: Signer,
    journal: Journal,
    now: datetime,
) -> Consent:
    """The subject takes consent back (themselves, or through the app acting on their behalf)."""
    return _end(session, consent, CONSENT_WITHDRAWN, by="subject", reason=reason, actor=actor,
                signer=signer, journal=journal, now=now)


def revoke(
    session: Session,
    consent: Consent,
    *,
    by: RevokedBy,
    reason: str,
    actor: Party,
    signer: Signer,
    journal: Journal,
    now: datetime,
) -> Consent:
    """The app (or an admin) ends the consent."""
    if by == "subject":
        raise InvalidTerms("a subject withdraws; use withdraw()")
    return _end(session, consent, CONSENT_REVOKED, by=by, reason=reason, actor=actor,
                signer=signer, journal=journal, now=now)


def get_consent(
    session: Session,
    consent_id: str,
    *,
    journal: Journal,
    now: datetime,
    client_id: str | None = None,
    subject_id: str | None = None,
    for_update: bool = False,
    read_options: Mapping[str, Any] | None = None,
) -> Consent:
    """The consent, brought up to date (lazy expiry); scoped to an app or a subject when given.

    ``read_options`` are execution options for the read, from a caller that knows how its database
    runs it (the gateway marks a plain read as needing no write transaction). Bringing the status up to
    date stays safe after such a read: the write is conditional on the row still being active.
    """
    if for_update and read_options:
        raise ValueError("a locking read runs in the transaction it locks for")
    query = _BY_ID_FOR_UPDATE if for_update else _BY_ID
    if read_options:
        query = query.execution_options(**read_options)
    consent = session.scalars(query, {"consent_id": consent_id}).first()
    if (
        consent is None
        or (client_id is not None and consent.client_id != client_id)
        or (subject_id is not None and consent.subject_id != subject_id)
    ):
        # Someone else's id reads exactly like an unknown one: ids must not leak who holds what.
        raise ConsentNotFound(f"no consent {consent_id!r}")
    refresh_status(session, consent, journal, now)
    return consent


# Built once: a statement built per call cost more than running it.
_BY_ID = select(Consent).where(Consent.id == bindparam("consent_id"))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update()


def list_consents(
    session: Session,
    *,
    journal: Journal,
    now: datetime,
    client_id: str | None = None,
    subject_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> list[Consent]:
    """Newest first, keyset-paged by ``(created_at, id)``; statuses are brought up to date first.

    ``read_options`` as for :func:`get_consent`: each status brought up to date is a conditional write.
    """
    if client_id is None and subject_id is None:
        raise InvalidTerms("list consents of an app or of a subject")
    query = select(Consent)
    if client_id is not None:
        query = query.where(Consent.client_id == client_id)
    if subject_id is not None:
        query = query.where(Consent.subject_id == subject_id)
    if status is not None:
        query = query.where(_status_clause(status, now))
    if after is not None:
        created, last_id = after
        query = query.where(or_(Consent.created_at < created,
                                (Consent.created_at == created) & (Consent.id < last_id)))
    if read_options:
        query = query.execution_options(**read_options)
    rows = list(session.scalars(query.order_by(Consent.created_at.desc(), Consent.id.desc()).limit(limit)))
    for consent in rows:
        refresh_status(session, consent, journal, now)
    return rows


def effective_status(consent: Consent, now: datetime) -> str:
    """The status every reader must act on: an active consent past its end reads as expired."""
    if consent.status != CONSENT_ACTIVE:
        return consent.status
    if now >= consent.expires_at:
        return CONSENT_EXPIRED
    if consent.max_uses is not None and consent.uses >= consent.max_uses:
        return CONSENT_EXHAUSTED
    return CONSENT_ACTIVE


def refresh_status(session: Session, consent: Consent, journal: Journal, now: datetime) -> str:
    """Write a derived end (expired, exhausted) back to the row, once, with its audit entry."""
    target = effective_status(consent, now)
    if target == consent.status:
        return target
    ended_at = consent.expires_at if target == CONSENT_EXPIRED else now
    if _transition(session, consent, target, ended_at=ended_at, ended_by="system"):
        journal.record(f"consent.{target}", SYSTEM, client_id=consent.client_id, subject=consent.subject_id,
                       consent_id=consent.id, detail={"uses": consent.uses, "max_uses": consent.max_uses})
    return consent.status


def sweep(session: Session, *, journal: Journal, now: datetime, limit: int = 500) -> int:
    """End active consents whose time or uses ran out (for a periodic job); returns how many."""
    due = session.scalars(
        select(Consent)
        .where(Consent.status == CONSENT_ACTIVE,
               or_(Consent.expires_at <= now,
                   Consent.max_uses.is_not(None) & (Consent.uses >= Consent.max_uses)))
        .order_by(Consent.expires_at)
        .limit(limit)
    )
    swept = 0
    for consent in due:
        before = consent.status
        if refresh_status(session, consent, journal, now) != before:
            swept += 1
    return swept


def _end(
    session: Session,
    consent: Consent,
    status: str,
    *,
    by: RevokedBy,
    reason: str,
    actor: Party,
    signer: Signer,
    journal: Journal,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> Consent:
    current = refresh_status(session, consent, journal, now)
    if current != CONSENT_ACTIVE:
        raise ConsentNotActive(f"the consent is already {current}", current)
    revocation_id = new_id("rev")
    token = jws.sign(
        revocation_claims(
            RevocationRecordSpec(
                revocation_id=revocation_id,
                consent_id=consent.id,
                subject_id=consent.subject_id,
                client_id=consent.client_id,
                issued_at=now,
                by=by,
                reason=reason,
            ),
            issuer=signer.issuer,
        ),
        signer,
        REVOCATION_TYP,
    )
    if not _transition(session, consent, status, ended_at=now, ended_by=by, revocation=token,
                       revocation_id=revocation_id):
        # Someone else ended it between our read and our write; report what they did.
        raise ConsentNotActive(f"the consent is already {consent.status}", consent.status)
    journal.record(
        f"consent.{status}",
        actor,
        client_id=consent.client_id,
        subject=consent.subject_id,
        consent_id=consent.id,
        reason=reason or None,
        detail={"revocation_id": revocation_id, "by": by, **(detail or {})},
    )
    return consent


def _end_superseded(session: Session, old_id: str, new: Consent, *, signer: Signer, journal: Journal,
                    now: datetime) -> None:
    old = session.get(Consent, old_id)
    if old is None or refresh_status(session, old, journal, now) != CONSENT_ACTIVE:
        return
    # The subject approved the renewal in place of the old consent, so the old one ends by their
    # will: two active consents with different terms would leave the narrower choice unenforced.
    _end(session, old, CONSENT_WITHDRAWN, by="subject", reason=f"superseded by {new.id}",
         actor=Party("subject", new.subject_id), signer=signer, journal=journal, now=now,
         detail={"superseded_by": new.id})


def _transition(session: Session, consent: Consent, status: str, **values: Any) -> bool:
    result = session.execute(
        update(Consent)
        .where(Consent.id == consent.id, Consent.status == CONSENT_ACTIVE)
        .values(status=status, **values)
        .execution_options(synchronize_session="fetch")
    )
    changed: int = result.rowcount  # type: ignore[attr-defined]
    if changed != 1:
        session.refresh(consent)
        return False
    return True


def _status_clause(status: str, now: datetime) -> Any:
    """SQL for "effective status is ``status``", so filters agree with :func:`effective_status`."""
    within_uses = or_(Consent.max_uses.is_(None), Consent.uses < Consent.max_uses)
    if status == CONSENT_ACTIVE:
        return (Consent.status == CONSENT_ACTIVE) & (Consent.expires_at > now) & within_uses
    if status == CONSENT_EXPIRED:
        return (Consent.status == CONSENT_EXPIRED) | ((Consent.status == CONSENT_ACTIVE)
                                                       & (Consent.expires_at <= now))
    if status == CONSENT_EXHAUSTED:
        return (Consent.status == CONSENT_EXHAUSTED) | ((Consent.status == CONSENT_ACTIVE)
                                                         & (Consent.expires_at > now) & ~within_uses)
    return Consent.status == status
