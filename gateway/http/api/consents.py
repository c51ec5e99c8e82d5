"""Consent requests and consents for apps, and public verification of signed records.

An app sees only its own requests and consents: another app's id answers 404 exactly like an
unknown one, so ids reveal nothing about who holds what.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import Field

from consent import lifecycle
from consent import requests as consent_requests
from consent.models import CONSENT_STATUSES, Consent, ConsentRequest
from consent.operations import OPERATIONS
from consent.subjects import parse_contact
from gateway.auth.models import OAuthClient
from gateway.auth.oauth import require
from gateway.consents.services import algorithm_lookup, end_for_app, verify_presented_record
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem
from gateway.core.times import format_optional
from gateway.http import openapi
from gateway.http.context import request_journal
from gateway.http.validation import Body, Query, parse_body, parse_query
from gateway.keys.contacts import vault
from gateway.keys.keyring import signer

bp = Blueprint("consent_api", __name__, url_prefix="/v1")

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class SubjectBody(Body):
    reference: str | None = Field(None, min_length=1, max_length=200,
                                  description="the app's own id for the person; shown to this app only")
    contact: str | None = Field(None, min_length=3, max_length=254,
                                description="email or +E.164 phone; omit to let the person enter it")


class ConsentRequestBody(Body):
    subject: SubjectBody = Field(default_factory=SubjectBody)
    operations: list[str] = Field(min_length=1, max_length=len(OPERATIONS),
                                  json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    purpose: str = Field(min_length=1, max_length=consent_requests.MAX_PURPOSE_CHARS)
    algorithms: list[str] | None = Field(None, min_length=1, max_length=50,
                                         description="filing numbers; omit for any registered algorithm")
    duration_days: int = Field(consent_requests.DEFAULT_DURATION_DAYS, ge=consent_requests.MIN_DURATION_DAYS,
                               le=consent_requests.MAX_DURATION_DAYS)
    max_uses: int | None = Field(None, ge=1, le=consent_requests.MAX_USES_LIMIT)
    redirect_uri: str | None = Field(None, min_length=1, max_length=2000,
                                     description="must equal one of the app's registered redirect URIs")
    locale: Literal["en", "zh-CN"] | None = None
    supersedes: str | None = Field(None, min_length=5, max_length=40,
                                   description="renewal: the consent id this one replaces once granted")


class RevokeBody(Body):
    reason: str = Field("", max_length=500)
    on_behalf_of_subject: bool = Field(
        False, description="the person asked the app to withdraw: the consent ends as withdrawn")


class VerifyBody(Body):
    record: str = Field(min_length=1, max_length=64 * 1024, description="compact JWS")


class ListQuery(Query):
    status: Literal["active", "withdrawn", "revoked", "expired", "exhausted"] | None = None
    subject: str | None = Field(None, max_length=40)
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=40)


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
    client = db.session.get(OAuthClient, g.client_id)
    if client is None:
        raise Problem(401, "invalid_token", "the token's client no longer exists")
    now = utcnow()
    row, created = consent_requests.create_request(
        db.session,
        requester=consent_requests.Requester(client.client_id, tuple(client.redirect_uris)),
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
    row = consent_requests.get_request(db.session, request_id, client_id=g.client_id,
                                       journal=request_journal(now), now=now)
    return jsonify(request_json(row))


@bp.get("/consents")
@require("consent:read")
def list_consents() -> Response:
    # 422 as for bodies: a well-formed list request whose values the API does not accept.
    query = parse_query(ListQuery, status=422, code="validation_failed")
    now = utcnow()
    journal = request_journal(now)
    after = None
    if query.cursor is not None:
        last = lifecycle.get_consent(db.session, query.cursor, client_id=g.client_id, journal=journal, now=now)
        after = (last.created_at, last.id)
    rows = lifecycle.list_consents(db.session, client_id=g.client_id, subject_id=query.subject,
                                   status=query.status, limit=query.limit, after=after, journal=journal, now=now)
    next_cursor = rows[-1].id if len(rows) == query.limit else None
    return jsonify(consents=[consent_json(row) for row in rows], next_cursor=next_cursor)


@bp.get("/consents/<consent_id>")
@require("consent:read")
def get_consent(consent_id: str) -> Response:
    now = utcnow()
    row = lifecycle.get_consent(db.session, consent_id, client_id=g.client_id,
                                journal=request_journal(now), now=now)
    return jsonify(consent_json(row))


@bp.post("/consents/<consent_id>/revoke")
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

_REQUEST = {
    "type": "object",
    "required": ["id", "status", "consent_url", "operations", "expires_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^creq_"},
        "status": {"enum": ["pending", "granted", "declined", "expired"]},
        "consent_url": {"type": "string", "format": "uri",
                        "description": "send the person here (hosted consent screen)"},
        "subject": {"type": "object", "properties": {"id": {"type": ["string", "null"]},
                                                     "reference": {"type": ["string", "null"]}}},
        "operations": {"type": "array", "items": {"enum": list(OPERATIONS)}},
        "purpose": {"type": "string"},
        "algorithms": {"type": ["array", "null"], "items": {"type": "string"}},
        "duration_days": {"type": "integer"},
        "max_uses": {"type": ["integer", "null"]},
        "redirect_uri": {"type": ["string", "null"]},
        "locale": {"type": ["string", "null"]},
        "supersedes": {"type": ["string", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "consent_id": {"type": ["string", "null"], "description": "set once granted"},
    },
}

_CONSENT = {
    "type": "object",
    "required": ["id", "status", "operations", "record"],
    "properties": {
        "id": {"type": "string", "pattern": "^cns_"},
        "status": {"enum": list(CONSENT_STATUSES)},
        "request_id": {"type": "string"},
        "subject": {"type": "object"},
        "operations": {"type": "array", "items": {"enum": list(OPERATIONS)}},
        "modalities": {"type": "array", "items": {"enum": ["face", "voice"]}},
        "algorithms": {"type": ["array", "null"], "items": {"type": "string"}},
        "purpose": {"type": "string"},
        "max_uses": {"type": ["integer", "null"]},
        "uses": {"type": "integer"},
        "not_before": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "supersedes": {"type": ["string", "null"]},
        "record": {"type": "string", "description": "compact JWS, typ consent+jwt"},
        "revocation": {"type": ["string", "null"], "description": "compact JWS, typ consent-revocation+jwt"},
    },
}

_VERIFICATION = {
    "type": "object",
    "required": ["valid"],
    "properties": {
        "valid": {"type": "boolean"},
        "type": {"enum": ["consent", "revocation"]},
        "kid": {"type": "string"},
        "claims": {"type": "object"},
        "consent_id": {"type": ["string", "null"]},
        "status": {"type": ["string", "null"], "description": "the consent's status now, from our database"},
        "matches_stored_record": {"type": "boolean"},
        "error": {
            "type": "object",
            "properties": {
                "code": {"enum": ["malformed_record", "algorithm_not_allowed", "unsupported_header",
                                  "unknown_key", "wrong_type", "bad_signature", "wrong_issuer",
                                  "invalid_record"]},
                "detail": {"type": "string"},
            },
        },
    },
}

_ID = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CONSENT_ID = {"name": "consent_id", "in": "path", "required": True, "schema": {"type": "string"}}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "retries with the same key and body return the same request (200, "
                               "Idempotent-Replayed: true); the same key with another body is a 409",
                "schema": {"type": "string", "maxLength": 200}}
_LIST_PARAMS = [
    {"name": "status", "in": "query", "schema": {"enum": list(CONSENT_STATUSES)}},
    {"name": "subject", "in": "query", "schema": {"type": "string"}, "description": "a sub_… id"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the last page"},
]

PATHS: dict[str, Any] = {
    "/v1/consent-requests": {
        "post": {
            "summary": "Ask a person for consent; returns the consent_url to send them to",
            "tags": ["consent"],
            **openapi.protected("consent:write"),
            "parameters": [_IDEMPOTENCY],
            "requestBody": openapi.json_body(ConsentRequestBody),
            "responses": {
                "201": openapi.json_response("created", _REQUEST),
                "200": openapi.json_response("replay of an earlier call with the same Idempotency-Key",
                                             _REQUEST),
                "401": openapi.problem(), "403": openapi.problem(),
                "409": openapi.problem("Idempotency-Key reused with another body (idempotency_key_reused)"),
                "422": openapi.problem("validation_failed, unknown_operation, algorithm_not_available, "
                                       "redirect_uri_not_registered, invalid_contact, invalid_terms"),
            },
        }
    },
    "/v1/consent-requests/{request_id}": {
        "get": {
            "summary": "A consent request of this app: status, and consent_id once granted",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": [_ID],
            "responses": {"200": openapi.json_response("the request", _REQUEST),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("unknown, or another app's (consent_request_not_found)")},
        }
    },
    "/v1/consents": {
        "get": {
            "summary": "This app's consents, newest first",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": _LIST_PARAMS,
            "responses": {
                "200": openapi.json_response("a page of consents", {
                    "type": "object",
                    "properties": {"consents": {"type": "array", "items": _CONSENT},
                                   "next_cursor": {"type": ["string", "null"]}}}),
                "401": openapi.problem(), "403": openapi.problem(), "422": openapi.problem(),
            },
        }
    },
    "/v1/consents/{consent_id}": {
        "get": {
            "summary": "One consent of this app: status, uses, record and revocation (JWS)",
            "tags": ["consent"],
            **openapi.protected("consent:read"),
            "parameters": [_CONSENT_ID],
            "responses": {"200": openapi.json_response("the consent", _CONSENT),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("unknown, or another app's (consent_not_found)")},
        }
    },
    "/v1/consents/{consent_id}/revoke": {
        "post": {
            "summary": "Revoke (or, on_behalf_of_subject, withdraw) a consent; effective immediately",
            "tags": ["consent"],
            **openapi.protected("consent:write"),
            "parameters": [_CONSENT_ID],
            "requestBody": openapi.json_body(RevokeBody),
            "responses": {"200": openapi.json_response("the ended consent with its revocation record", _CONSENT),
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
            "requestBody": openapi.json_body(VerifyBody),
            "responses": {"200": openapi.json_response("verification report", _VERIFICATION),
                          "422": openapi.problem()},
        }
    },
}
