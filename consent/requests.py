"""Consent requests: an app asks one subject for consent to named operations.

A request is ``pending`` until the subject approves (``granted``) or declines it, or until it expires
(24 hours by default). Expiry is derived from ``expires_at`` and written back lazily, with its audit
entry, by whichever reader touches the request first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent import canonical
from consent.errors import (
    AlgorithmNotAvailable,
    ConsentNotFound,
    IdempotencyConflict,
    InvalidTerms,
    RedirectNotRegistered,
    RequestNotFound,
    RequestNotPending,
    SubjectMismatch,
    UnknownOperation,
)
from consent.journal import SYSTEM, Journal, Party
from consent.models import (
    REQUEST_DECLINED,
    REQUEST_EXPIRED,
    REQUEST_PENDING,
    Consent,
    ConsentRequest,
    Subject,
)
from consent.operations import LOCALES, OPERATIONS
from consent.policy import AlgorithmStatus, AlgorithmView
from consent.records import new_id
from consent.subjects import Contact, ContactVault, subject_for_contact

DEFAULT_TTL = timedelta(hours=24)
MIN_DURATION_DAYS = 1
# A year: long enough for a campaign, short enough that a forgotten consent does not live forever.
MAX_DURATION_DAYS = 365
DEFAULT_DURATION_DAYS = 30
MAX_PURPOSE_CHARS = 2000
MAX_USES_LIMIT = 1_000_000

AlgorithmLookup = Callable[[str], AlgorithmView | None]


@dataclass(frozen=True)
class RequestTerms:
    """What the app asks for, already parsed; validated against the catalogue and registry here."""

    operations: tuple[str, ...]
    purpose: str
    algorithms: tuple[str, ...] | None = None
    duration_days: int = DEFAULT_DURATION_DAYS
    max_uses: int | None = None
    redirect_uri: str | None = None
    locale: str | None = None
    supersedes: str | None = None


@dataclass(frozen=True)
class Requester:
    """The app: its client id and the redirect URIs it registered."""

    client_id: str
    redirect_uris: tuple[str, ...]


def create_request(
    session: Session,
    *,
    requester: Requester,
    terms: RequestTerms,
    contact: Contact | None,
    reference: str | None,
    idempotency_key: str | None,
    algorithms: AlgorithmLookup,
    vault: ContactVault,
    journal: Journal,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> tuple[ConsentRequest, bool]:
    """Create a request, or return the one an earlier call with the same Idempotency-Key created.

    Returns ``(request, created)``. The same key with a different body raises
    :class:`IdempotencyConflict`: a retry must not silently change what the subject is asked.
    """
    fingerprint = _fingerprint(terms, contact, reference, vault)
    if idempotency_key is not None:
        earlier = _by_key(session, requester.client_id, idempotency_key)
        if earlier is not None:
            return _replayed(session, earlier, fingerprint, journal, now), False

    _validate(terms, requester, algorithms)
    subject_id = _subject_of(session, requester.client_id, supersedes=terms.supersedes, contact=contact,
                             vault=vault, now=now)
    request = ConsentRequest(
        id=new_id("creq"),
        client_id=requester.client_id,
        subject_id=subject_id,
        subject_reference=reference,
        status=REQUEST_PENDING,
        operations=[name for name in OPERATIONS if name in terms.operations],
        algorithms=None if terms.algorithms is None else sorted(terms.algorithms),
        purpose=terms.purpose,
        duration_days=terms.duration_days,
        max_uses=terms.max_uses,
        redirect_uri=terms.redirect_uri,
        locale=terms.locale,
        supersedes=terms.supersedes,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        created_at=now,
        expires_at=now + ttl,
    )
    if idempotency_key is None:
        # Nothing to recover from (the id is new and random): no savepoint, whose two statements cost
        # more than the insert.
        session.add(request)
    else:
        try:
            # Two retries may arrive at once: the unique (client, key) lets one insert win; the savepoint
            # keeps the loser's transaction usable so it can answer with the winner's request.
            with session.begin_nested():
                session.add(request)
        except IntegrityError:
            winner = _by_key(session, requester.client_id, idempotency_key)
            if winner is None:
                raise
            return _replayed(session, winner, fingerprint, journal, now), False
    journal.record(
        "consent_request.created",
        Party("client", requester.client_id),
        client_id=requester.client_id,
        subject=subject_id,
        consent_request_id=request.id,
        detail={
            "operations": request.operations,
            "algorithms": request.algorithms,
            "duration_days": request.duration_days,
            "max_uses": request.max_uses,
            "supersedes": request.supersedes,
            "expires_at": int(request.expires_at.timestamp()),
        },
    )
    return request, True


def get_request(
    session: Session,
    request_id: str,
    *,
    journal: Journal,
    now: datetime,
    client_id: str | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> ConsentRequest:
    """The request (expired lazily if its time has passed). With ``client_id``, only that app's.

    ``read_options`` are execution options for the read (see :func:`consent.lifecycle.get_consent`); the
    lazy expiry stays safe after any read: it is conditional on the request still being pending.
    """
    request = session.get(ConsentRequest, request_id, execution_options=read_options or {})
    if request is None or (client_id is not None and request.client_id != client_id):
        # Another app's id answers exactly like an unknown one, so ids do not leak across apps.
        raise RequestNotFound(f"no consent request {request_id!r}")
    expire_if_due(session, request, journal, now)
    return request


def expire_if_due(session: Session, request: ConsentRequest, journal: Journal, now: datetime) -> bool:
    if request.status != REQUEST_PENDING or now < request.expires_at:
        return False
    # Conditional on still being pending, so two readers racing here write one audit entry.
    result = session.execute(
        update(ConsentRequest)
        .where(ConsentRequest.id == request.id, ConsentRequest.status == REQUEST_PENDING)
        .values(status=REQUEST_EXPIRED)
        .execution_options(synchronize_session="fetch")
    )
    if _rowcount(result) != 1:
        session.refresh(request)
        return False
    journal.record("consent_request.expired", SYSTEM, client_id=request.client_id, subject=request.subject_id,
                   consent_request_id=request.id)
    return True


def sweep(session: Session, *, journal: Journal, now: datetime, limit: int = 500) -> int:
    """Expire pending requests whose time has passed (for a periodic job); returns how many."""
    due = session.scalars(
        select(ConsentRequest)
        .where(ConsentRequest.status == REQUEST_PENDING, ConsentRequest.expires_at <= now)
        .order_by(ConsentRequest.expires_at)
        .limit(limit)
    )
    return sum(1 for request in due if expire_if_due(session, request, journal, now))


def require_pending(session: Session, request: ConsentRequest, journal: Journal, now: datetime) -> None:
    expire_if_due(session, request, journal, now)
    if request.status != REQUEST_PENDING:
        raise RequestNotPending(f"the request is {request.status}", request.status)


def decline(session: Session, request: ConsentRequest, *, subject_id: str, journal: Journal,
            now: datetime) -> None:
    """The subject said no to every operation."""
    require_pending(session, request, journal, now)
    bind_subject(request, subject_id)
    request.status = REQUEST_DECLINED
    request.decided_at = now
    journal.record("consent_request.declined", Party("subject", subject_id), client_id=request.client_id,
                   subject=subject_id, consent_request_id=request.id)


def bind_subject(request: ConsentRequest, subject_id: str) -> None:
    if request.subject_id is None:
        request.subject_id = subject_id
    elif request.subject_id != subject_id:
        raise SubjectMismatch("this request is for another person")


def _validate(terms: RequestTerms, requester: Requester, lookup: AlgorithmLookup) -> None:
    if not terms.operations:
        raise InvalidTerms("name at least one operation")
    unknown = [name for name in terms.operations if name not in OPERATIONS]
    if unknown:
        raise UnknownOperation(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(OPERATIONS)}")
    if len(set(terms.operations)) != len(terms.operations):
        raise InvalidTerms("name each operation once")
    if not terms.purpose.strip() or len(terms.purpose) > MAX_PURPOSE_CHARS:
        raise InvalidTerms(f"the purpose is 1 to {MAX_PURPOSE_CHARS} characters")
    if not MIN_DURATION_DAYS <= terms.duration_days <= MAX_DURATION_DAYS:
        raise InvalidTerms(f"duration_days is {MIN_DURATION_DAYS} to {MAX_DURATION_DAYS}")
    if terms.max_uses is not None and not 1 <= terms.max_uses <= MAX_USES_LIMIT:
        raise InvalidTerms(f"max_uses is 1 to {MAX_USES_LIMIT} (or omitted for no limit)")
    if terms.locale is not None and terms.locale not in LOCALES:
        raise InvalidTerms(f"locale is one of {', '.join(LOCALES)}")
    # Exact string match, no prefix or normalisation games: anything else is an open redirect.
    if terms.redirect_uri is not None and terms.redirect_uri not in requester.redirect_uris:
        raise RedirectNotRegistered("redirect_uri must be exactly one of the URIs registered for this app")
    if terms.algorithms is not None:
        _validate_algorithms(terms.algorithms, terms.operations, lookup)


def _validate_algorithms(filing_numbers: tuple[str, ...], operations: tuple[str, ...],
                         lookup: AlgorithmLookup) -> None:
    if not filing_numbers:
        raise InvalidTerms("algorithms is omitted (any registered) or names at least one")
    if len(set(filing_numbers)) != len(filing_numbers):
        raise InvalidTerms("name each algorithm once")
    for filing_number in filing_numbers:
        view = lookup(filing_number)
        if view is None:
            raise AlgorithmNotAvailable(f"algorithm {filing_number!r} is not registered")
        if view.status != AlgorithmStatus.ACTIVE:
            raise AlgorithmNotAvailable(f"algorithm {filing_number!r} is {view.status}")
        # A consent naming only algorithms that cannot do what is asked would be a consent to nothing.
        if not view.operations.intersection(operations):
            raise AlgorithmNotAvailable(f"algorithm {filing_number!r} performs none of the requested operations")


def _subject_of(session: Session, client_id: str, *, supersedes: str | None, contact: Contact | None,
                vault: ContactVault, now: datetime) -> str | None:
    if supersedes is not None:
        old = session.get(Consent, supersedes)
        if old is None or old.client_id != client_id:
            raise ConsentNotFound(f"supersedes names no consent of this app: {supersedes!r}")
        if contact is not None and vault.lookup_hash(contact) != _contact_hash(session, old.subject_id):
            raise SubjectMismatch("the contact is not that of the subject of the consent being renewed")
        # A renewal goes to the person who gave the consent; the app need not know their contact.
        return old.subject_id
    if contact is None:
        return None
    return subject_for_contact(session, vault, contact, now).id


def _contact_hash(session: Session, subject_id: str) -> str | None:
    subject = session.get(Subject, subject_id)
    return None if subject is None else subject.contact_hash


def _by_key(session: Session, client_id: str, key: str) -> ConsentRequest | None:
    return session.scalars(
        select(ConsentRequest).where(ConsentRequest.client_id == client_id, ConsentRequest.idempotency_key == key)
    ).first()


def _replayed(session: Session, earlier: ConsentRequest, fingerprint: str, journal: Journal,
              now: datetime) -> ConsentRequest:
    if earlier.fingerprint != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
    expire_if_due(session, earlier, journal, now)
    return earlier


def _fingerprint(terms: RequestTerms, contact: Contact | None, reference: str | None,
                 vault: ContactVault) -> str:
    body: dict[str, Any] = asdict(terms)
    body["operations"] = sorted(terms.operations)
    body["algorithms"] = None if terms.algorithms is None else sorted(terms.algorithms)
    # The keyed hash, not the contact: the fingerprint is stored, the contact only encrypted.
    body["contact"] = None if contact is None else vault.lookup_hash(contact)
    body["reference"] = reference
    return hashlib.sha256(canonical.dumps(body)).hexdigest()


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
