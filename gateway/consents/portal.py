"""The subject portal's services: what the consent screen and ``/me`` read and change, one call per page.

The portal's views (``gateway.http.portal``) parse the form, call one function here and render what
it returns. Every function runs inside the request's unit of work and never commits; audit entries
go to the ``journal`` the view hands in (the request's), and ``now`` comes from the edge.

Refusals the person sees as the same step again — an invalid contact, a rejected code (its attempt
is counted), an approval with nothing ticked or a changed notice (the subject is already bound to
the request) — are *returned* (:class:`Refused`), not raised, so that the request boundary commits
what happened before them. Anything raised is rolled back.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import errors, jws, lifecycle
from consent import requests as consent_requests
from consent.journal import Journal, Party
from consent.models import (
    CODE_FOR_CONSENT,
    CONSENT_ACTIVE,
    REQUEST_PENDING,
    Consent,
    ConsentRequest,
    OneTimeCode,
    Subject,
)
from consent.notice import NoticeText
from consent.records import CONSENT_TYP, REVOCATION_TYP, Notice
from consent.subjects import Contact, contact_of, parse_contact
from gateway.auth.models import OAuthClient
from gateway.biometrics.binding import (
    BindingSettings,
    SelfieNeeded,
    bound_modalities,
    delete_templates,
    shred_unused,
    store_face_template,
    templates_of,
)
from gateway.biometrics.faces import BiometricsUnavailable, EnrolmentRefused, Face, enrolment_face
from gateway.biometrics.liveness import check_liveness
from gateway.biometrics.models import BiometricTemplate
from gateway.consents.services import (
    app_name,
    authn_for,
    history,
    notice_for,
    send_consent_code,
    verification_keys,
    verify_code,
)
from gateway.core.errors import GatewayError
from gateway.keys.contacts import vault
from gateway.keys.keyring import signer
from gateway.registry import algorithms as registry

__all__ = [
    "MY_CONSENTS_SHOWN",
    "WITHDRAWAL_REASON",
    "AboutApp",
    "AlgorithmName",
    "Choice",
    "Closed",
    "CodeSent",
    "Decided",
    "LocaleChooser",
    "MyConsent",
    "MyConsents",
    "Proof",
    "ProveAgain",
    "Receipt",
    "Refused",
    "Screen",
    "Stage",
    "Verified",
    "check_code",
    "consent_details",
    "decide",
    "my_consent",
    "my_consents",
    "receipt",
    "send_code",
    "show_request",
    "withdraw",
]

# Where this browser is on the consent screen: entering the contact, entering the code, or reading
# the notice (the contact is proved). The view knows it from the session cookie.
Stage = Literal["contact", "code", "notice"]

# The page's locale given the app's hint for the request (``ConsentRequest.locale``); the view's rule.
LocaleChooser = Callable[[str | None], str]

MY_CONSENTS_SHOWN = 200
WITHDRAWAL_REASON = "withdrawn by the subject on the portal"
TEMPLATES_DELETED_REASON = "the subject deleted the biometric template it needs"


# --- what the consent screen shows ------------------------------------------------------------------


@dataclass(frozen=True)
class AboutApp:
    """What the app registered about itself (RFC 7591 client metadata), shown beside its name."""

    client_uri: str | None = None  # its web page: who publishes it
    policy_uri: str | None = None  # its privacy policy
    tos_uri: str | None = None  # its terms of service
    logo_uri: str | None = None

    @property
    def website(self) -> str | None:
        """The host of ``client_uri``, the name people know the publisher by."""
        return urlsplit(self.client_uri).hostname if self.client_uri else None


@dataclass(frozen=True)
class Screen:
    """One step of the consent screen for a pending request, with what that step shows."""

    request: ConsentRequest
    locale: str
    app: str
    stage: Stage
    notice: NoticeText | None = None  # at "notice": the text whose SHA-256 goes into the record
    masked_contact: str | None = None  # at "contact": the contact the app named, masked (else None)
    about: AboutApp = field(default_factory=AboutApp)


@dataclass(frozen=True)
class Closed:
    """The request was already decided or has expired: this screen has nothing left to ask."""

    request: ConsentRequest
    locale: str
    app: str


@dataclass(frozen=True)
class Refused:
    """The same step again, with the domain's reason (invalid contact, rejected code, nothing ticked…)."""

    screen: Screen
    reason: errors.ConsentError | GatewayError


@dataclass(frozen=True)
class ProveAgain:
    """A decision without a (fresh) proof of the contact: back to the contact step."""

    screen: Screen


@dataclass(frozen=True)
class CodeSent:
    request_id: str
    code_id: str | None
    masked_contact: str


@dataclass(frozen=True)
class Verified:
    """The code proved control of the contact: who, and how (``authn`` of the consent record)."""

    request_id: str
    subject_id: str
    authn: str


@dataclass(frozen=True)
class Proof:
    """What this browser proved for the request (from the session cookie): who, how and when."""

    subject_id: str
    authn: str
    at: datetime


@dataclass(frozen=True)
class Choice:
    """What the person submitted on the notice: decline, or approve the ticked operations."""

    decline: bool
    operations: tuple[str, ...]
    notice_sha256: str  # of the notice the submitted form was rendered with
    selfie: bytes | None = None  # the photo sent with the form, when face operations need a template
    # With liveness on: the head-turn video sent instead, and the challenge this browser was shown.
    selfie_video: bytes | None = None
    challenge: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decided:
    request: ConsentRequest
    locale: str
    app: str
    consent: Consent | None  # the consent granted; None when declined


def _open(
    session: Session, request_id: str, locale_for: LocaleChooser, journal: Journal, now: datetime
) -> tuple[ConsentRequest, str]:
    request = consent_requests.get_request(session, request_id, journal=journal, now=now)
    return request, locale_for(request.locale)


def _closed(session: Session, request: ConsentRequest, locale: str) -> Closed:
    return Closed(request, locale, app_name(session, request.client_id))


def _masked_contact(session: Session, request: ConsentRequest) -> str | None:
    if request.subject_id is None:
        return None
    subject = session.get(Subject, request.subject_id)
    return None if subject is None else contact_of(subject, vault()).masked()


def about_app(session: Session, client_id: str) -> AboutApp:
    client = session.get(OAuthClient, client_id)
    if client is None:
        return AboutApp()
    return AboutApp(client.client_uri, client.policy_uri, client.tos_uri, client.logo_uri)


def _screen(session: Session, request: ConsentRequest, stage: Stage, locale: str) -> Screen:
    name, about = app_name(session, request.client_id), about_app(session, request.client_id)
    if stage == "notice":
        return Screen(request, locale, name, stage, notice=notice_for(session, request, locale), about=about)
    if stage == "contact":
        return Screen(request, locale, name, stage, masked_contact=_masked_contact(session, request), about=about)
    return Screen(request, locale, name, stage, about=about)


def show_request(
    session: Session, request_id: str, *, stage: Stage, locale_for: LocaleChooser, journal: Journal, now: datetime
) -> Screen | Closed:
    """The consent screen at ``stage`` (the request expires lazily if its time has passed)."""
    request, locale = _open(session, request_id, locale_for, journal, now)
    if request.status != REQUEST_PENDING:
        return _closed(session, request, locale)
    return _screen(session, request, stage, locale)


def send_code(
    session: Session, request_id: str, contact: str, *, previous_code_id: str | None = None, stage: Stage, ip: str,
    locale_for: LocaleChooser, journal: Journal, now: datetime,
) -> CodeSent | Refused | Closed:
    """Send a code to the contact the app named, else to the one the person typed (``contact``).

    "Send a new code" types nothing: the new code goes where ``previous_code_id`` (the code this
    browser was sent for the request) went, so the browser never has to keep the address itself.
    ``RateLimited`` is raised; its counted hits stay in the session for the caller to commit.
    """
    request, locale = _open(session, request_id, locale_for, journal, now)
    if request.status != REQUEST_PENDING:
        return _closed(session, request, locale)
    entered = None
    if request.subject_id is None:
        entered = _contact_of_code(session, request, previous_code_id) if not contact.strip() else None
        if entered is None:
            try:
                entered = parse_contact(contact)
            except errors.InvalidContact as exc:
                return Refused(_screen(session, request, "contact", locale), exc)
    sent = send_consent_code(session, request, entered, ip=ip, locale=locale, now=now)
    return CodeSent(request.id, sent.code_id, sent.masked_contact)


def _contact_of_code(session: Session, request: ConsentRequest, code_id: str | None) -> Contact | None:
    """The contact an earlier code for this request was sent to (None if there is no such code)."""
    row = session.get(OneTimeCode, code_id) if code_id else None
    if row is None or row.purpose != CODE_FOR_CONSENT or row.request_id != request.id:
        return None
    subject = session.get(Subject, row.subject_id)
    return None if subject is None else contact_of(subject, vault())


def check_code(
    session: Session, request_id: str, *, code_id: str | None, presented: str, stage: Stage, ip: str,
    locale_for: LocaleChooser, journal: Journal, now: datetime,
) -> Verified | Refused | Closed:
    """Check the code sent for this request (``RateLimited`` is raised, a rejected code returned)."""
    request, locale = _open(session, request_id, locale_for, journal, now)
    if request.status != REQUEST_PENDING:
        return _closed(session, request, locale)
    try:
        subject = verify_code(session, code_id=code_id, purpose=CODE_FOR_CONSENT, request_id=request.id,
                              presented=presented, ip=ip, now=now)
    except errors.CodeRejected as exc:
        # Returned, not raised: the counted attempt and its audit entry must be committed.
        return Refused(_screen(session, request, stage, locale), exc)
    return Verified(request.id, subject.id, authn_for(subject))


def decide(
    session: Session, request_id: str, choice: Choice, proof: Proof | None, *, locale_for: LocaleChooser,
    binding: BindingSettings, journal: Journal, now: datetime,
) -> Decided | Refused | ProveAgain | Closed:
    """Decline, or grant the ticked operations of the notice in ``locale`` (signed, with its audit entry)."""
    # The face is found before the database is touched: it takes a few hundred milliseconds of CPU, and on
    # SQLite a transaction that has written holds the only write lock.
    selfie = None if choice.decline else _selfie_face(choice, binding)
    request, locale = _open(session, request_id, locale_for, journal, now)
    if request.status != REQUEST_PENDING:
        return _closed(session, request, locale)
    if proof is None:
        return ProveAgain(_screen(session, request, "contact", locale))
    if choice.decline:
        consent_requests.decline(session, request, subject_id=proof.subject_id, journal=journal, now=now)
        return Decided(request, locale, app_name(session, request.client_id), None)
    notice = notice_for(session, request, locale)
    approval = lifecycle.Approval(
        subject_id=proof.subject_id,
        operations=choice.operations,
        notice=Notice(version=notice.version, sha256=notice.sha256, locale=notice.locale),
        presented_notice_sha256=choice.notice_sha256,
        authn=proof.authn,
        authenticated_at=proof.at,
    )
    try:
        # Checked before anything is enrolled, so a refused form leaves no template behind.
        lifecycle.check_approval(request, approval)
        templates = _enrol(session, proof.subject_id, selfie, journal=journal, now=now)
        consent = lifecycle.grant(session, request, replace(approval, templates=templates), signer=signer(session),
                                  journal=journal, now=now)
    except (errors.NoOperationChosen, errors.NoticeChanged, EnrolmentRefused, SelfieNeeded,
            BiometricsUnavailable) as exc:
        return Refused(_screen(session, request, "notice", locale), exc)
    return Decided(request, locale, app_name(session, request.client_id), consent)


@dataclass(frozen=True)
class _Enrolment:
    face: Face
    liveness: dict[str, Any] | None = None  # the challenge and the turns seen, for the audit entry


def _selfie_face(choice: Choice, settings: BindingSettings) -> _Enrolment | GatewayError | None:
    """The face the ticked operations need, found in what was sent with the form (or why there is none)."""
    needed = bound_modalities(choice.operations, settings)
    if not needed:
        return None
    if needed != ["face"]:
        return BiometricsUnavailable("voice templates cannot be enrolled in this installation")
    try:
        return _face_of(choice, settings)
    except (EnrolmentRefused, BiometricsUnavailable, SelfieNeeded) as exc:
        return exc


def _face_of(choice: Choice, settings: BindingSettings) -> _Enrolment:
    if settings.liveness:
        if not choice.selfie_video or not choice.challenge:
            raise SelfieNeeded("record the short video of your face the page asks for")
        seen = check_liveness(io.BytesIO(choice.selfie_video), choice.challenge, threshold=settings.liveness_yaw,
                              max_seconds=settings.liveness_max_seconds)
        return _Enrolment(seen.face, {"challenge": list(choice.challenge), "turns": list(seen.turns)})
    if not choice.selfie:
        raise SelfieNeeded("add a photo of your face to approve face operations")
    return _Enrolment(enrolment_face(choice.selfie))


def _enrol(session: Session, subject_id: str, selfie: _Enrolment | GatewayError | None, *, journal: Journal,
           now: datetime) -> dict[str, lifecycle.TemplateEvidence]:
    """The templates of the consent about to be granted (raises why there cannot be one)."""
    if selfie is None:
        return {}
    if isinstance(selfie, GatewayError):
        raise selfie
    return {"face": store_face_template(session, vault(), subject_id, selfie.face, journal=journal, now=now,
                                        liveness=selfie.liveness)}


# --- what /me shows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlgorithmName:
    """How a page names an algorithm: its name and provider beside the filing number."""

    filing_number: str
    name: str | None  # None: not (or no longer) in the register
    provider: str | None = None


@dataclass(frozen=True)
class MyConsents:
    consents: list[Consent]  # newest first, statuses brought up to date
    names: dict[str, str]  # app name by client id


@dataclass(frozen=True)
class MyConsent:
    consent: Consent
    app: str
    history: list[dict[str, Any]]  # audit entries under this consent, oldest first (empty unless asked)
    # Every algorithm the consent or its history names, by filing number.
    algorithms: dict[str, AlgorithmName] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    consent_id: str
    document: dict[str, Any]
    app: str = ""
    algorithms: dict[str, AlgorithmName] = field(default_factory=dict)


def _algorithm_names(session: Session, filing_numbers: list[str]) -> dict[str, AlgorithmName]:
    names = {}
    for number in dict.fromkeys(filing_numbers):
        row = registry.get_algorithm(session, number)
        names[number] = AlgorithmName(number, row.name if row else None, row.provider if row else None)
    return names


def my_consents(session: Session, subject_id: str, *, journal: Journal, now: datetime) -> MyConsents:
    rows = lifecycle.list_consents(session, subject_id=subject_id, limit=MY_CONSENTS_SHOWN, journal=journal,
                                   now=now)
    return MyConsents(rows, {row.client_id: app_name(session, row.client_id) for row in rows})


def my_consent(session: Session, consent_id: str, *, subject_id: str, journal: Journal, now: datetime) -> MyConsent:
    """One of the subject's consents (another subject's id reads as unknown: ``ConsentNotFound``)."""
    row = lifecycle.get_consent(session, consent_id, subject_id=subject_id, journal=journal, now=now)
    return MyConsent(row, app_name(session, row.client_id), [], _algorithm_names(session, row.algorithms or []))


def consent_details(
    session: Session, consent_id: str, *, subject_id: str, journal: Journal, now: datetime
) -> MyConsent:
    """One of the subject's consents with what the audit log says happened under it."""
    row = lifecycle.get_consent(session, consent_id, subject_id=subject_id, journal=journal, now=now)
    entries = history(session, subject_id, row.id)
    named = [*(row.algorithms or []), *(str(e["algorithm"]) for e in entries if e.get("algorithm"))]
    return MyConsent(row, app_name(session, row.client_id), entries, _algorithm_names(session, named))


def receipt(
    session: Session, consent_id: str, *, subject_id: str, issuer: str, journal: Journal, now: datetime,
    form: Literal["json", "html"] = "json",
) -> Receipt:
    """The signed record and revocation of one of the subject's consents, decoded for people too.

    ``form`` is how the subject takes it: the JSON download or the printable page (both audited).
    """
    row = lifecycle.get_consent(session, consent_id, subject_id=subject_id, journal=journal, now=now)
    keys = verification_keys(session)
    claims = jws.verify(row.record, keys, issuer=issuer, typ=CONSENT_TYP).claims
    document: dict[str, Any] = {
        "type": "consent-receipt",
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "consent_id": row.id,
        "status": row.status,
        "record": row.record,
        "revocation": row.revocation,
        # Decoded for people; the JWS above is what proves it (verify it with the JWKS).
        "record_claims": claims,
        "revocation_claims": None if row.revocation is None
        else jws.verify(row.revocation, keys, issuer=issuer, typ=REVOCATION_TYP).claims,
    }
    journal.record("receipt.downloaded", Party("subject", subject_id), subject=subject_id,
                   client_id=row.client_id, consent_id=row.id, detail={"form": form})
    terms = claims.get("consent")
    algorithms = [str(a) for a in terms.get("algorithms") or []] if isinstance(terms, dict) else []
    return Receipt(row.id, document, app_name(session, row.client_id), _algorithm_names(session, algorithms))


def withdraw(session: Session, consent_id: str, *, subject_id: str, journal: Journal, now: datetime) -> Consent:
    """The subject withdraws one of their consents (``ConsentNotActive`` if it already ended)."""
    row = lifecycle.get_consent(session, consent_id, subject_id=subject_id, journal=journal, now=now,
                                for_update=True)
    lifecycle.withdraw(session, row, reason=WITHDRAWAL_REASON, actor=Party("subject", subject_id),
                       signer=signer(session), journal=journal, now=now)
    # A template no active consent names any more is deleted in the same transaction.
    shred_unused(session, journal=journal, now=now, subject_ids=[subject_id])
    return row


@dataclass(frozen=True)
class MyTemplates:
    templates: list[BiometricTemplate]
    needing: list[Consent]  # the active consents that end if the templates are deleted
    names: dict[str, str]  # app name by client id


def my_templates(session: Session, subject_id: str, *, now: datetime) -> MyTemplates:
    """The subject's templates and the active consents granted with one of them."""
    templates = templates_of(session, subject_id)
    digests = {t.sha256 for t in templates}
    needing = [c for c in session.scalars(select(Consent).where(
        Consent.subject_id == subject_id, Consent.status == CONSENT_ACTIVE, Consent.bindings.is_not(None),
        Consent.expires_at > now).order_by(Consent.created_at))
        if digests & set((c.bindings or {}).values())]
    return MyTemplates(templates, needing, {c.client_id: app_name(session, c.client_id) for c in needing})


def delete_my_templates(session: Session, subject_id: str, *, journal: Journal, now: datetime) -> int:
    """The subject deletes their templates: the consents granted with them are withdrawn first."""
    for consent in my_templates(session, subject_id, now=now).needing:
        lifecycle.withdraw(session, consent, reason=TEMPLATES_DELETED_REASON, actor=Party("subject", subject_id),
                           signer=signer(session), journal=journal, now=now)
    return delete_templates(session, subject_id, journal=journal, now=now)
