"""The consent domain wired to the gateway: audit journal, keys, registry, notifier and rate limits.

Views call these functions (parse → call → render); each one runs inside the request's unit of work
and never commits. Everything here is glue the domain cannot do itself because it needs ``gateway``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import queries as audit_queries
from audit.models import QueuedEntry
from consent import codes, jws, lifecycle
from consent.errors import InvalidRecord, WrongType
from consent.journal import Journal, Party
from consent.lifecycle import effective_status
from consent.models import CODE_FOR_CONSENT, CODE_FOR_PORTAL, Consent, ConsentRequest, Subject
from consent.notice import AlgorithmFacts, NoticeFacts, NoticeText, render
from consent.policy import AlgorithmView
from consent.records import CONSENT_TYP, REVOCATION_TYP
from consent.signing import Signer
from consent.subjects import Contact, contact_of, find_subject, subject_for_contact
from gateway.auditing.trail import AuditJournal
from gateway.auth.models import OAuthClient
from gateway.auth.ratelimit import Limit, limiter
from gateway.biometrics.binding import shred_unused
from gateway.consents.notify import Message, notifier
from gateway.core.errors import GatewayError
from gateway.i18n import translate
from gateway.keys.contacts import vault
from gateway.keys.keyring import key_store
from gateway.registry import algorithms as registry

__all__ = [
    "RateLimited",
    "SentCode",
    "algorithm_lookup",
    "app_name",
    "authn_for",
    "end_for_app",
    "history",
    "notice_for",
    "send_consent_code",
    "send_portal_code",
    "verification_keys",
    "verify_code",
    "verify_presented_record",
]


class RateLimited(GatewayError):
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


def _limit(name: str, default: int, window_seconds: int) -> Limit:
    return Limit(name, int(current_app.config.get(name.upper().replace("-", "_"), default)), window_seconds)


def _check(session: Session, limits: list[tuple[Limit, str]], now: datetime) -> None:
    # Every limit is counted even when an earlier one already refuses, so a flood from one IP
    # also uses up the contact's budget and the other way round.
    verdicts = [limiter().hit(session, limit, key, now) for limit, key in limits]
    refused = [v.retry_after for v in verdicts if not v.allowed]
    if refused:
        raise RateLimited(max(refused))


def algorithm_lookup(session: Session) -> Callable[[str], AlgorithmView | None]:
    def lookup(filing_number: str) -> AlgorithmView | None:
        return registry.policy_view(registry.get_algorithm(session, filing_number))

    return lookup


def app_name(session: Session, client_id: str) -> str:
    client = session.get(OAuthClient, client_id)
    return client.name if client is not None else client_id


def portal_url() -> str:
    return str(current_app.config["ISSUER"]).rstrip("/") + "/me"


def notice_for(session: Session, request: ConsentRequest, locale: str) -> NoticeText:
    """The notice for this request, exactly as the consent screen shows it."""
    algorithms: tuple[AlgorithmFacts, ...] | None = None
    if request.algorithms is not None:
        facts = []
        for filing_number in request.algorithms:
            row = registry.get_algorithm(session, filing_number)
            name, provider = (row.name, row.provider) if row is not None else (filing_number, "?")
            facts.append(AlgorithmFacts(filing_number=filing_number, name=name, provider=provider))
        algorithms = tuple(facts)
    return render(
        NoticeFacts(
            app_name=app_name(session, request.client_id),
            operations=tuple(request.operations),
            purpose=request.purpose,
            algorithms=algorithms,
            duration_days=request.duration_days,
            max_uses=request.max_uses,
            portal_url=portal_url(),
        ),
        locale,
    )


def authn_for(subject: Subject) -> str:
    return "email_otp" if subject.contact_kind == "email" else "sms_otp"


@dataclass(frozen=True)
class SentCode:
    code_id: str | None  # None when nothing was sent (unknown contact on the portal login)
    masked_contact: str
    subject_id: str | None


def send_consent_code(
    session: Session, request: ConsentRequest, entered: Contact | None, *, ip: str, locale: str, now: datetime
) -> SentCode:
    """Send a code proving control of the request's contact (or of the one the subject entered)."""
    the_vault = vault()
    if request.subject_id is not None:
        # The app named the person: the code goes to their contact, whatever was typed.
        subject = session.get(Subject, request.subject_id)
        if subject is None:
            raise LookupError(f"subject {request.subject_id} of request {request.id} is missing")
    elif entered is not None:
        subject = subject_for_contact(session, the_vault, entered, now)
    else:
        raise ValueError("a contact is needed")
    contact = contact_of(subject, the_vault)
    _check(session, [(_limit("otp-send-per-contact", 5, 3600), subject.contact_hash),
                     (_limit("otp-send-per-ip", 20, 3600), ip)], now)
    issued = codes.issue_code(session, subject=subject, purpose=CODE_FOR_CONSENT, request_id=request.id,
                              pepper=the_vault.code_pepper, journal=AuditJournal(session, now), now=now)
    text = translate(locale, "message.consent", code=issued.code, app=app_name(session, request.client_id))
    notifier().send(Message(to=contact.value, channel=contact.kind, subject=translate(locale, "message.subject"),
                            text=text, locale=locale, code=issued.code))
    return SentCode(issued.id, contact.masked(), subject.id)


def send_portal_code(session: Session, entered: Contact, *, ip: str, locale: str, now: datetime) -> SentCode:
    """Send a sign-in code for /me, if this contact belongs to a subject (the answer looks the same)."""
    the_vault = vault()
    _check(session, [(_limit("otp-send-per-contact", 5, 3600), the_vault.lookup_hash(entered)),
                     (_limit("otp-send-per-ip", 20, 3600), ip)], now)
    subject = find_subject(session, the_vault, entered)
    if subject is None:
        # Same page as for a known contact: whether someone has consents is not for strangers to learn.
        return SentCode(None, entered.masked(), None)
    issued = codes.issue_code(session, subject=subject, purpose=CODE_FOR_PORTAL, request_id=None,
                              pepper=the_vault.code_pepper, journal=AuditJournal(session, now), now=now)
    notifier().send(Message(to=entered.value, channel=entered.kind, subject=translate(locale, "message.subject"),
                            text=translate(locale, "message.portal", code=issued.code), locale=locale,
                            code=issued.code))
    return SentCode(issued.id, entered.masked(), subject.id)


def verify_code(
    session: Session, *, code_id: str | None, purpose: str, request_id: str | None, presented: str, ip: str,
    now: datetime,
) -> Subject:
    """Check a code (counted per IP across processes); the subject it proves, or CodeRejected."""
    _check(session, [(_limit("otp-verify-per-ip", 30, 600), ip)], now)
    row = codes.verify_code(session, code_id=code_id, purpose=purpose, request_id=request_id,
                            presented=presented, pepper=vault().code_pepper,
                            journal=AuditJournal(session, now), now=now)
    subject = session.get(Subject, row.subject_id)
    if subject is None:
        raise LookupError(f"subject {row.subject_id} of code {row.id} is missing")
    if subject.verified_at is None:
        subject.verified_at = now
    return subject


def end_for_app(
    session: Session, consent_id: str, *, client_id: str, on_behalf_of_subject: bool, reason: str, signer: Signer,
    journal: Journal, now: datetime,
) -> Consent:
    """An app ends its consent: *withdrawn* when it acts on the person's request, else *revoked*.

    The difference is in the signed revocation record (``by``), so it is decided here, once.
    """
    row = lifecycle.get_consent(session, consent_id, client_id=client_id, journal=journal, now=now,
                                for_update=True)
    actor = Party("client", client_id)
    if on_behalf_of_subject:
        lifecycle.withdraw(session, row, reason=reason, actor=actor, signer=signer, journal=journal, now=now)
    else:
        lifecycle.revoke(session, row, by="client", reason=reason, actor=actor, signer=signer, journal=journal,
                         now=now)
    shred_unused(session, journal=journal, now=now, subject_ids=[row.subject_id])
    return row


def verification_keys(session: Session) -> dict[str, Ed25519PublicKey]:
    """Every published key (retired ones too: old records must keep verifying)."""
    return {row.kid: Ed25519PublicKey.from_public_bytes(row.public_key) for row in key_store().all(session)}


def verify_presented_record(session: Session, token: str, now: datetime) -> dict[str, Any]:
    """Check a consent or revocation record someone presents; a report, never an exception.

    ``valid`` is true only for a record signed by one of our keys, for our issuer, with the right
    ``typ``. The current status comes from our database (the record itself cannot know it).
    """
    keys = verification_keys(session)
    issuer = str(current_app.config["ISSUER"])
    kind = "consent"
    try:
        try:
            verified = jws.verify(token, keys, issuer=issuer, typ=CONSENT_TYP)
        except WrongType as exc:
            kind = "revocation"
            try:
                verified = jws.verify(token, keys, issuer=issuer, typ=REVOCATION_TYP)
            except WrongType:
                # Neither kind: say so, rather than only that it is not the second one tried.
                raise WrongType(f"{exc}, nor {REVOCATION_TYP!r}") from None
    except InvalidRecord as exc:
        return {"valid": False, "error": {"code": exc.code, "detail": str(exc)}}
    claims = verified.claims
    consent_id = claims.get("jti") if kind == "consent" else claims.get("consent")
    consent = session.get(Consent, consent_id) if isinstance(consent_id, str) else None
    report: dict[str, Any] = {
        "valid": True,
        "type": kind,
        "kid": verified.header["kid"],
        "claims": claims,
        "consent_id": consent_id,
        "status": None if consent is None else effective_status(consent, now),
    }
    if kind == "consent" and consent is not None:
        # A record that verifies but is not the one we stored was signed by us, yet is not this
        # consent's record of truth (e.g. re-signed by a leaked key); say so rather than hide it.
        report["matches_stored_record"] = consent.record == token
    return report


# A subject's whole history is read (it is filtered to one consent afterwards); bounded so that a
# pathological subject cannot make one page load read the whole log.
_HISTORY_PAGES = 20


def history(session: Session, subject_id: str, consent_id: str) -> list[dict[str, Any]]:
    """What the audit log says happened under one consent, oldest first (sequenced and queued entries)."""
    # The queue is read first: an entry the sequencer moves in between then shows up twice (and is
    # de-duplicated below) instead of not at all. The queue is short (drained within seconds), but a
    # subject who has just withdrawn must already see it.
    bodies: list[bytes] = list(session.scalars(select(QueuedEntry.body).order_by(QueuedEntry.id)))
    cursor: str | None = None
    for _ in range(_HISTORY_PAGES):
        page, cursor = audit_queries.entries(session, audit_queries.EntryFilter(subject=subject_id), 500, cursor)
        bodies += [row.body for row in page]
        if cursor is None:
            break
    found: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    for body in bodies:
        entry = json.loads(body)
        if entry.get("subject") != subject_id:
            continue
        if entry.get("consent_id") != consent_id and consent_id not in (entry.get("consents") or []):
            continue
        key = json.dumps({k: v for k, v in entry.items() if k not in ("seq", "shard")}, sort_keys=True).encode()
        if key in seen:
            continue
        seen.add(key)
        found.append(entry)
    return sorted(found, key=lambda e: str(e.get("ts", "")))
