"""Consent requests and consents for apps, and public verification of signed records.

An app sees only its own requests and consents: another app's id answers 404 exactly like an
unknown one, so ids reveal nothing about who holds what.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from pydantic import AfterValidator, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema
from werkzeug.routing import BaseConverter

from consent import lifecycle
from consent import requests as consent_requests
from consent.models import CONSENT_STATUSES, Consent, ConsentRequest
from consent.operations import OPERATIONS
from consent.subjects import CONTACT_PATTERN, MAX_CONTACT_LENGTH, parse_contact
from gateway.auth.oauth import require
from gateway.consents.services import algorithm_lookup, end_for_app, verify_presented_record
from gateway.core.boundary import commit_early
from gateway.core.clock import utcnow
from gateway.core.db import STANDALONE_READ, db
from gateway.core.problems import Problem
from gateway.core.times import format_optional
from gateway.http import openapi
from gateway.http.context import request_journal
from gateway.http.schemas import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CONSENT_ID,
    EXAMPLE_FILING_NUMBER,
    EXAMPLE_ISSUER,
    EXAMPLE_KID,
    EXAMPLE_PURPOSE,
    EXAMPLE_REDIRECT_URI,
    EXAMPLE_REQUEST_ID,
    EXAMPLE_SUBJECT_ID,
    View,
    absent,
)
from gateway.http.validation import (
    NOT_BLANK,
    NUL_FREE,
    Body,
    FilingNumber,
    Identifier,
    Query,
    Reason,
    ShortText,
    parse_body,
    parse_query,
)
from gateway.keys.contacts import vault
from gateway.keys.keyring import signer

bp = Blueprint("consent_api", __name__, url_prefix="/v1")

# A consent id in a path: never the word "verify", so /v1/consents/verify is POST only (its OPTIONS and
# 405 answers do not offer the GET of /v1/consents/{consent_id}).
CONSENT_ID_IN_PATH = r"(?!verify$)[A-Za-z0-9_-]{1,64}"


class _ConsentIdConverter(BaseConverter):
    regex = CONSENT_ID_IN_PATH


@bp.record_once
def _converters(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["consent_id"] = _ConsentIdConverter

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


# What the notice shows as the purpose: the raw text within the limit, not blank, stripped once valid.
Purpose = Annotated[str, StringConstraints(pattern=NOT_BLANK, min_length=1,
                                           max_length=consent_requests.MAX_PURPOSE_CHARS), AfterValidator(str.strip)]


class SubjectBody(Body):
    reference: ShortText | None = Field(None, description="the app's own id for the person; shown to this app only")
    # The pattern is checked by consent.subjects.parse_contact (422 invalid_contact, as before); the
    # document states it so that clients know it.
    contact: str | None = Field(None, min_length=3, max_length=MAX_CONTACT_LENGTH,
                                json_schema_extra={"pattern": CONTACT_PATTERN},
                                description="email or +E.164 phone (separators allowed); omit to let the person "
                                            "enter it")


class ConsentRequestBody(Body):
    subject: SubjectBody = Field(default_factory=SubjectBody)
    operations: list[str] = Field(min_length=1, max_length=len(OPERATIONS),
                                  json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    purpose: Purpose = Field(description="shown to the person on the notice")
    algorithms: list[FilingNumber] | None = Field(None, min_length=1, max_length=50,
                                                  description="filing numbers; omit for any registered algorithm")
    duration_days: int = Field(consent_requests.DEFAULT_DURATION_DAYS, ge=consent_requests.MIN_DURATION_DAYS,
                               le=consent_requests.MAX_DURATION_DAYS)
    max_uses: int | None = Field(None, ge=1, le=consent_requests.MAX_USES_LIMIT)
    redirect_uri: str | None = Field(None, min_length=1, max_length=2000, pattern=NUL_FREE,
                                     description="must equal one of the app's registered redirect URIs")
    locale: Literal["en", "zh-CN"] | None = None
    supersedes: Identifier | None = Field(None,
                                   description="renewal: the consent id this one replaces once granted")


class RevokeBody(Body):
    reason: Reason = Field("", description="kept in the signed revocation record")
    on_behalf_of_subject: bool = Field(
        False, description="the person asked the app to withdraw: the consent ends as withdrawn")


class VerifyBody(Body):
    record: str = Field(min_length=1, max_length=64 * 1024, pattern=NUL_FREE, description="compact JWS")


class ListQuery(Query):
    status: Literal["active", "withdrawn", "revoked", "expired", "exhausted"] | None = None
    subject: Identifier | None = Field(None, description="a sub_… id")
    limit: int = Field(50, ge=1, le=100, description="page size")
    cursor: Identifier | None = Field(None, description="next_cursor of the previous page")


def _issuer() -> str:
    return str(current_app.config["ISSUER"]).rstrip("/")


def request_json(row: ConsentRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "consent_url": f"{_issuer()}/consent/{row.id}",
        "subject": {"id": row.subject_id, "reference": row.subject_reference},
        "operations": row.operations,
        "purpose": row.purpose,
        "algorithms": row.algorithms,
        "duration_days": row.duration_days,
        "max_uses": row.max_uses,
        "redirect_uri": row.redirect_uri,
        "locale": row.locale,
        "supersedes": row.supersedes,
        "created_at": format_optional(row.created_at),
        "expires_at": format_optional(row.expires_at),
        "decided_at": format_optional(row.decided_at),
        "consent_id": row.consent_id,
    }


def consent_json(row: Consent) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "request_id": row.request_id,
        "subject": {"id": row.subject_id, "reference": row.subject_reference},
        "operations": row.operations,
        "modalities": row.modalities,
        "algorithms": row.algorithms,
        "purpose": row.purpose,
        "max_uses": row.max_uses,
        "uses": row.uses,
        "not_before": format_optional(row.not_before),
        "expires_at": format_optional(row.expires_at),
        "created_at": format_optional(row.created_at),
        "ended_at": format_optional(row.ended_at),
        "supersedes": row.supersedes,
        "binding": sorted(row.bindings or {}),
        "record": row.record,
        "revocation": row.revocation,
    }


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(400, "invalid_idempotency_key", "Idempotency-Key is 1 to 200 visible ASCII characters")
    return key


@bp.post("/consent-requests")
@require("consent:write")
def create_consent_request() -> tuple[Response, int, dict[str, str]]:
    body = parse_body(ConsentRequestBody)
    key = _idempotency_key()
    contact = parse_contact(body.subject.contact) if body.subject.contact is not None else None
    now = utcnow()
    row, created = consent_requests.create_request(
        db.session,
        # The app's redirect URIs were read with its token.
        requester=consent_requests.Requester(g.client_id, g.client_redirect_uris),
        terms=consent_requests.RequestTerms(
            operations=tuple(body.operations), purpose=body.purpose,
            algorithms=None if body.algorithms is None else tuple(body.algorithms),
            duration_days=body.duration_days, max_uses=body.max_uses, redirect_uri=body.redirect_uri,
            locale=body.locale, supersedes=body.supersedes,
        ),
        contact=contact,
        reference=body.subject.reference,
        idempotency_key=key,
        algorithms=algorithm_lookup(db.session),
        vault=vault(),
        journal=request_journal(now),
        now=now,
        ttl=_request_ttl(),
    )
    # Committed before the answer is rendered, as a decision is: the write lock is let go sooner.
    commit_early()
    headers = {"Location": f"/v1/consent-requests/{row.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return jsonify(request_json(row)), 201 if created else 200, headers


def _request_ttl() -> timedelta:
    return timedelta(hours=float(current_app.config["REQUEST_TTL_HOURS"]))


@bp.get("/consent-requests/<request_id>")
@require("consent:read")
def get_consent_request(request_id: str) -> Response:
    now = utcnow()
    # Apps poll this while the person decides: a plain read, which on SQLite does not queue behind writers.
    row = consent_requests.get_request(db.session, request_id, client_id=g.client_id,
                                       journal=request_journal(now), now=now, read_options=STANDALONE_READ)
    return jsonify(request_json(row))


@bp.get("/consents")
@require("consent:read")
def list_consents() -> Response:
    # 422 as for bodies: a well-formed list request whose values the API does not accept.
    query = parse_query(ListQuery, status=422, code="validation_failed")
    now = utcnow()
    journal = request_journal(now)
    after = None
    # Plain reads, as for one consent: on SQLite they do not queue behind writers.
    if query.cursor is not None:
        last = lifecycle.get_consent(db.session, query.cursor, client_id=g.client_id, journal=journal, now=now,
                                     read_options=STANDALONE_READ)
        after = (last.created_at, last.id)
    rows = lifecycle.list_consents(db.session, client_id=g.client_id, subject_id=query.subject,
                                   status=query.status, limit=query.limit, after=after, journal=journal, now=now,
                                   read_options=STANDALONE_READ)
    next_cursor = rows[-1].id if len(rows) == query.limit else None
    return jsonify(consents=[consent_json(row) for row in rows], next_cursor=next_cursor)


@bp.get("/consents/<consent_id:consent_id>")
@require("consent:read")
def get_consent(consent_id: str) -> Response:
    now = utcnow()
    # A plain read: on SQLite it does not queue behind writers (a lazy expiry still writes, conditionally).
    row = lifecycle.get_consent(db.session, consent_id, client_id=g.client_id,
                                journal=request_journal(now), now=now, read_options=STANDALONE_READ)
    return jsonify(consent_json(row))


@bp.post("/consents/<consent_id:consent_id>/revoke")
@require("consent:write")
def revoke_consent(consent_id: str) -> Response:
    body = parse_body(RevokeBody)
    now = utcnow()
    row = end_for_app(db.session, consent_id, client_id=g.client_id, on_behalf_of_subject=body.on_behalf_of_subject,
                      reason=body.reason, signer=signer(db.session), journal=request_journal(now), now=now)
    return jsonify(consent_json(row))


@bp.post("/consents/verify")
def verify_record() -> Response:
    body = parse_body(VerifyBody)
    return jsonify(verify_presented_record(db.session, body.record, utcnow()))


# --- OpenAPI ------------------------------------------------------------------------------------

class SubjectView(View):
    """The person, as this app knows them."""

    id: str | None = Field(pattern="^sub_", description="the gateway's id for the person; null on a request "
                                                          "until they have proved a contact")
    reference: str | None = Field(description="the app's own id for the person, as it gave it")


class ConsentRequestView(View):
    """A consent request: pending until the person decides on the hosted consent screen, or it expires."""

    id: str = Field(pattern="^creq_")
    status: Literal["pending", "granted", "declined", "expired"]
    consent_url: str = Field(description="send the person here (hosted consent screen)",
                             json_schema_extra={"format": "uri"})
    subject: SubjectView
    operations: list[str] = Field(json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    purpose: str
    algorithms: list[str] | None = Field(description="filing numbers; null for any registered algorithm")
    duration_days: int = Field(description="how long the consent lasts once granted")
    max_uses: int | None
    redirect_uri: str | None = Field(description="where the person returns, with request_id and status")
    locale: Literal["en", "zh-CN"] | None
    supersedes: str | None = Field(description="renewal: the consent this one replaces once granted")
    created_at: datetime
    expires_at: datetime = Field(description="the request's own end: it expires if not decided by then")
    decided_at: datetime | None
    consent_id: str | None = Field(description="set once granted")


class ConsentView(View):
    """A granted consent with its signed record (and, once ended early, its signed revocation)."""

    id: str = Field(pattern="^cns_")
    status: str = Field(description="only active permits processing",
                        json_schema_extra={"enum": list(CONSENT_STATUSES)})
    request_id: str = Field(pattern="^creq_")
    subject: SubjectView
    operations: list[str] = Field(json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    modalities: list[Literal["face", "voice"]]
    algorithms: list[str] | None = Field(description="filing numbers; null for any registered algorithm")
    purpose: str
    max_uses: int | None
    uses: int = Field(description="allowed decisions so far")
    not_before: datetime
    expires_at: datetime
    created_at: datetime
    ended_at: datetime | None = Field(description="when it was withdrawn, revoked, or found expired or used up")
    supersedes: str | None
    binding: list[Literal["face", "voice"]] = Field(
        description="modalities granted with the person's template: every edit's media are checked against it, "
                    "so the consent is usable only through POST /v1/edits (decision mode: binding_requires_media)")
    record: str = Field(description="compact JWS, typ consent+jwt")
    revocation: str | None = Field(description="compact JWS, typ consent-revocation+jwt")


class ConsentPage(View):
    """A page of this app's consents, newest first."""

    consents: list[ConsentView]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class VerificationError(View):
    code: Literal["malformed_record", "algorithm_not_allowed", "unsupported_header", "unknown_key", "wrong_type",
                  "bad_signature", "wrong_issuer", "invalid_record"]
    detail: str


class RecordVerification(View):
    """What a presented record proves: valid with its claims and the consent's status now, or why not."""

    valid: bool
    type: Literal["consent", "revocation"] | SkipJsonSchema[None] = absent("valid records only")
    kid: str | SkipJsonSchema[None] = absent("the key that signed it (valid records only)")
    claims: dict[str, Any] | SkipJsonSchema[None] = absent("the record's claims (valid records only)")
    consent_id: str | None = absent("the consent it is or revokes (valid records only)")
    status: str | None = absent("the consent's status now, from our database; null if we hold no such "
                                "consent (valid records only)",
                                extra={"enum": [*CONSENT_STATUSES, None]})
    matches_stored_record: bool | SkipJsonSchema[None] = absent(
        "valid consent records we hold: whether it is the very record we stored")
    error: VerificationError | SkipJsonSchema[None] = absent("invalid records only")


EXAMPLE_RECORD = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImtUQjNrUDZ2c1Y3U20iLCJ0eXAiOiJjb25zZW50K2p3dCJ9.eyJhdWQiOiJjbGlfSDVGVHhyMTN"
    "pMmZDQmJMVTg5eXdaQSIsImNvbnNlbnQiOnsiYWxnb3JpdGhtcyI6WyJCSi0yMDI0LTAwNDIiXSwiY29sbGVjdGlvbiI6eyJhdCI6MTc"
    "5NjA3MjUzMywiYXV0aG4iOiJlbWFpbF9vdHAiLCJtZXRob2QiOiJob3N0ZWRfY29uc2VudF9zY3JlZW4ifSwiZXZpZGVuY2UiOnsiYXV"
    "0aGVudGljYXRlZF9hdCI6MTc5NjA3MjUzM30sImp1cmlzZGljdGlvbiI6IkNOIiwibGVnYWxfYmFzaXMiOiJQSVBMIEFydC4gMjkgc2V"
    "wYXJhdGUgY29uc2VudDsgRGVlcCBTeW50aGVzaXMgUHJvdmlzaW9ucyBBcnQuIDE0IiwibWF4X3VzZXMiOjEwLCJtb2RhbGl0aWVzIjp"
    "bImZhY2UiXSwibm90aWNlIjp7ImxvY2FsZSI6ImVuIiwic2hhMjU2IjoiMGY2ZGRlMThhNjEzYjVhZGIzMTBhMjhiODQ2NGMxN2FmNTA"
    "3YjdhNTc5MzE0NmRiOGRmODk2NmI0NDU4ZDEyNyIsInZlcnNpb24iOiIyMDI2LTExLTIxIn0sIm9wZXJhdGlvbnMiOlsiZmFjZV9zd2F"
    "wIl0sInB1cnBvc2UiOiJQdXQgeW91ciBmYWNlIGludG8gdGhlIGJpcnRoZGF5IHZpZGVvIHlvdXIgZnJpZW5kcyBhcmUgbWFraW5nIn0"
    "sImV4cCI6MTc5ODY2NDUzMywiaWF0IjoxNzk2MDcyNTMzLCJpc3MiOiJodHRwczovL2NvbnNlbnQuZXhhbXBsZS5jb20iLCJqdGkiOiJ"
    "jbnNfMkNGdVlQZDA4YXQxUWtiN1REcGFDMjU0IiwibmJmIjoxNzk2MDcyNTMzLCJyZXF1ZXN0IjoiY3JlcV9fbXB0QXlGSlQ4TVZlMnh"
    "4eV82RTdVSXMiLCJzdWIiOiJzdWJfSGlLaTgtZEt6ZFpiUjVRZmRuVXRtdmpFIn0.4ezKo1GYB7iXx8xNSi2Vanyi4GWK2l7WIMCkb_J"
    "NrgQDKu_vQNkflL2Xy0kYbdPLfJaq3rVfe7wdrq4x79_7DA"
)
EXAMPLE_REVOCATION = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImtUQjNrUDZ2c1Y3U20iLCJ0eXAiOiJjb25zZW50LXJldm9jYXRpb24rand0In0.eyJhdWQiOiJj"
    "bGlfSDVGVHhyMTNpMmZDQmJMVTg5eXdaQSIsImJ5Ijoic3ViamVjdCIsImNvbnNlbnQiOiJjbnNfMkNGdVlQZDA4YXQxUWtiN1REcGFD"
    "MjU0IiwiaWF0IjoxNzk2MDcyNTMzLCJpc3MiOiJodHRwczovL2NvbnNlbnQuZXhhbXBsZS5jb20iLCJqdGkiOiJyZXZfakdVdmNFcTJa"
    "OG56anQ0T1NKU3hsZnBiIiwicmVhc29uIjoidGhlIHBlcnNvbiBhc2tlZCB1cyBieSBlbWFpbCB0byBzdG9wIiwic3ViIjoic3ViX0hp"
    "S2k4LWRLemRaYlI1UWZkblV0bXZqRSJ9.owbiG-bWKxZ1RdouzrXYJ1lIGX5RDMcKG2877BQxbKVnZ23bmMxAO-adk4b2vRQTm3S6ZVi"
    "kHuJm7cgMe5u7DQ"
)
_SUBJECT = {"id": EXAMPLE_SUBJECT_ID, "reference": "user-42"}
_TERMS = {"operations": ["face_swap"], "purpose": EXAMPLE_PURPOSE, "algorithms": [EXAMPLE_FILING_NUMBER],
          "max_uses": 10}
_PENDING = {
    "id": EXAMPLE_REQUEST_ID, "status": "pending", "consent_url": f"{EXAMPLE_ISSUER}/consent/{EXAMPLE_REQUEST_ID}",
    "subject": _SUBJECT, **_TERMS, "duration_days": 30, "redirect_uri": EXAMPLE_REDIRECT_URI, "locale": None,
    "supersedes": None, "created_at": "2026-11-30T21:02:12.776643Z", "expires_at": "2026-12-01T21:02:12.776643Z",
    "decided_at": None, "consent_id": None,
}
_GRANTED = {**_PENDING, "status": "granted", "decided_at": "2026-11-30T21:02:13.166618Z",
            "consent_id": EXAMPLE_CONSENT_ID}
_ACTIVE = {
    "id": EXAMPLE_CONSENT_ID, "status": "active", "request_id": EXAMPLE_REQUEST_ID, "subject": _SUBJECT,
    "operations": ["face_swap"], "modalities": ["face"], "algorithms": [EXAMPLE_FILING_NUMBER],
    "purpose": EXAMPLE_PURPOSE, "max_uses": 10, "uses": 0, "not_before": "2026-11-30T21:02:13.166618Z",
    "expires_at": "2026-12-30T21:02:13Z", "created_at": "2026-11-30T21:02:13.166618Z", "ended_at": None,
    "supersedes": None, "binding": [], "record": EXAMPLE_RECORD, "revocation": None,
}
_WITHDRAWN = {**_ACTIVE, "status": "withdrawn", "uses": 1, "ended_at": "2026-11-30T21:02:13.452209Z",
              "revocation": EXAMPLE_REVOCATION}
EXAMPLE_RECORD_CLAIMS = {
    "iss": EXAMPLE_ISSUER, "jti": EXAMPLE_CONSENT_ID, "sub": EXAMPLE_SUBJECT_ID, "aud": EXAMPLE_CLIENT_ID,
    "iat": 1796072533, "nbf": 1796072533, "exp": 1798664533, "request": EXAMPLE_REQUEST_ID,
    "consent": {
        "operations": ["face_swap"], "modalities": ["face"], "purpose": EXAMPLE_PURPOSE,
        "algorithms": [EXAMPLE_FILING_NUMBER], "max_uses": 10,
        "notice": {"version": "2026-11-21", "locale": "en",
                   "sha256": "0f6dde18a613b5adb310a28b8464c17af507b7a5793146db8df8966b4458d127"},
        "collection": {"method": "hosted_consent_screen", "authn": "email_otp", "at": 1796072533},
        "jurisdiction": "CN", "legal_basis": "PIPL Art. 29 separate consent; Deep Synthesis Provisions Art. 14",
        "evidence": {"authenticated_at": 1796072533},
    },
}
EXAMPLE_REVOCATION_CLAIMS = {
    "iss": EXAMPLE_ISSUER, "jti": "rev_jGUvcEq2Z8nzjt4OSJSxlfpb", "consent": EXAMPLE_CONSENT_ID,
    "sub": EXAMPLE_SUBJECT_ID, "aud": EXAMPLE_CLIENT_ID, "iat": 1796072533, "by": "subject",
    "reason": "the person asked us by email to stop",
}

_ID = openapi.path_parameter("request_id", EXAMPLE_REQUEST_ID)
_CONSENT_ID = openapi.path_parameter("consent_id", EXAMPLE_CONSENT_ID, pattern=f"^{CONSENT_ID_IN_PATH}$")
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "retries with the same key and body return the same request (200, "
                               "Idempotent-Replayed: true); the same key with another body is a 409; a key that "
                               "is not 1 to 200 visible ASCII characters is a 400 (invalid_idempotency_key)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                           "pattern": f"^{_IDEMPOTENCY_KEY.pattern}$"},
                "example": "order-7731-face-swap"}

PATHS: dict[str, Any] = {
    "/v1/consent-requests": {
        "post": {
            "summary": "Ask a person for consent; returns the consent_url to send them to",
            "tags": ["consent"],
            **openapi.protected("consent:write"),
            "parameters": [_IDEMPOTENCY],
            "requestBody": openapi.json_body(ConsentRequestBody, {
                "known_contact": openapi.example(
                    "Ask Alice, whose email the app knows, for one face swap with one algorithm",
                    {"subject": {"reference": "user-42", "contact": "alice@example.com"}, **_TERMS,
                     "redirect_uri": EXAMPLE_REDIRECT_URI},
                    description="The person gets a one-time code at the contact on the consent screen; "
                                "`reference` is the app's own id for them, shown back to this app only."),
                "minimal": openapi.example(
                    "Only what is asked and why: the person enters their contact on the consent screen",
                    {"operations": ["face_swap", "face_attribute_edit"], "purpose": EXAMPLE_PURPOSE}),
            }),
            "responses": {
                "201": {**openapi.json_response("created", ConsentRequestView, {
                    "pending": openapi.example("Created: send the person to consent_url", _PENDING)}),
                    "links": {"GetConsentRequest": {"operationId": "getConsentRequest",
                                                    "parameters": {"request_id": "$response.body#/id"},
                                                    "description": "poll until granted"}}},
                "200": openapi.json_response("replay of an earlier call with the same Idempotency-Key",
                                             ConsentRequestView, {
                                                 "replayed": openapi.example("The request created before",
                                                                             _PENDING)}),
                "401": openapi.problem(), "403": openapi.problem(),
                "404": openapi.problem("supersedes names no consent of this app (consent_not_found)"),
                "409": openapi.problem("Idempotency-Key reused with another body (idempotency_key_reused)"),
                "422": openapi.problem("validation_failed, unknown_operation, algorithm_not_available, "
                                       "redirect_uri_not_registered, invalid_contact, invalid_terms"),
            },
        }
    },
    "/v1/consent-requests/{request_id}": {
        "get": {
            "summary": "A consent request of this app: status, and consent_id once granted",
            "operationId": "getConsentRequest",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": [_ID],
            "responses": {"200": openapi.json_response("the request", ConsentRequestView, {
                              "granted": openapi.example("Granted: consent_id names the new consent", _GRANTED),
                              "pending": openapi.example("The person has not decided yet", _PENDING)}),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("unknown, or another app's (consent_request_not_found)")},
        }
    },
    "/v1/consents": {
        "get": {
            "summary": "This app's consents, newest first",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": openapi.query_parameters(ListQuery),
            "responses": {
                "200": {**openapi.json_response("a page of consents", ConsentPage, {
                    "one_page": openapi.example("The only page: one active consent",
                                                {"consents": [_ACTIVE], "next_cursor": None})}),
                    "links": {"GetFirstConsent": {"operationId": "getConsent",
                                                  "parameters": {"consent_id": "$response.body#/consents/0/id"}},
                              "RevokeFirstConsent": {"operationId": "revokeConsent",
                                                     "parameters": {"consent_id": "$response.body#/consents/0/id"}}}},
                "401": openapi.problem(), "403": openapi.problem(),
                "404": openapi.problem("the cursor names no consent of this app (consent_not_found)"),
                "422": openapi.problem("validation_failed: a query parameter the document does not allow"),
            },
        }
    },
    "/v1/consents/{consent_id}": {
        "get": {
            "summary": "One consent of this app: status, uses, record and revocation (JWS)",
            "operationId": "getConsent",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": [_CONSENT_ID],
            "responses": {"200": openapi.json_response("the consent", ConsentView, {
                              "active": openapi.example("Active, not used yet", _ACTIVE)}),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("unknown, or another app's (consent_not_found)")},
        }
    },
    "/v1/consents/{consent_id}/revoke": {
        "post": {
            "summary": "Revoke (or, on_behalf_of_subject, withdraw) a consent; effective immediately",
            "operationId": "revokeConsent",
            "tags": ["consent"],
            **openapi.protected("consent:write"),
            "parameters": [_CONSENT_ID],
            "requestBody": openapi.json_body(RevokeBody, {
                "withdraw": openapi.example("The person asked the app to withdraw",
                                            {"reason": "the person asked us by email to stop",
                                             "on_behalf_of_subject": True}),
                "revoke": openapi.example("The app stops on its own account",
                                          {"reason": "the birthday video was cancelled"}),
            }),
            "responses": {"200": openapi.json_response("the ended consent with its revocation record", ConsentView, {
                              "withdrawn": openapi.example("Withdrawn, with the signed revocation", _WITHDRAWN)}),
                          "401": openapi.problem(), "403": openapi.problem(), "404": openapi.problem(),
                          "409": openapi.problem("already ended (consent_not_active, current_status)"),
                          "422": openapi.problem()},
        }
    },
    "/v1/consents/verify": {
        "post": {
            "summary": "Verify a consent or revocation record: signature, issuer, type, current status",
            "description": "Public. Any record that parses as a request body gets a 200 report: "
                           "`valid: true` with the claims and the consent's current status, or "
                           "`valid: false` with `error.code` (malformed_record, algorithm_not_allowed "
                           "for `none`/HS256 alg confusion, unknown_key, wrong_type, bad_signature for "
                           "altered records, wrong_issuer). A body that is not `{\"record\": string}` "
                           "is a 4xx problem.",
            "tags": ["consent"],
            "requestBody": openapi.json_body(VerifyBody, {
                "record": openapi.example("A consent record, as the app stored it", {"record": EXAMPLE_RECORD}),
                "revocation": openapi.example("A revocation record", {"record": EXAMPLE_REVOCATION}),
            }),
            "responses": {"200": openapi.json_response("verification report", RecordVerification, {
                              "valid_consent": openapi.example("A valid consent record, still active", {
                                  "valid": True, "type": "consent", "kid": EXAMPLE_KID, "claims": EXAMPLE_RECORD_CLAIMS,
                                  "consent_id": EXAMPLE_CONSENT_ID, "status": "active",
                                  "matches_stored_record": True}),
                              "valid_revocation": openapi.example("A valid revocation record", {
                                  "valid": True, "type": "revocation", "kid": EXAMPLE_KID,
                                  "claims": EXAMPLE_REVOCATION_CLAIMS, "consent_id": EXAMPLE_CONSENT_ID,
                                  "status": "withdrawn"}),
                              "altered": openapi.example("An altered record", {
                                  "valid": False, "error": {"code": "bad_signature", "detail": "the signature "
                                                            "does not match the header and payload"}}),
                          }),
                          "422": openapi.problem()},
        }
    },
}
