"""Decision mode: an app asks whether it may run an edit and gets a signed ticket or a reason.

A denied decision is *returned* as a 403 problem, not raised, so that the request boundary commits
it together with its audit entry (raising would roll both back).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify
from pydantic import Field, field_validator, model_validator

from consent.operations import OPERATIONS, modality_of, scope_for
from consent.policy import BindingCheck, DecisionRequest, DenyReason
from consent.records import SHA256_HEX_PATTERN
from gateway.auth.oauth import require
from gateway.core.boundary import commit_early
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, problem_response
from gateway.core.times import format_time
from gateway.decisions import service as decisions
from gateway.decisions.models import OUTCOMES
from gateway.http import openapi
from gateway.http.context import calling_app, request_journal
from gateway.http.schemas import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CONSENT_ID,
    EXAMPLE_DECISION_ID,
    EXAMPLE_FILING_NUMBER,
    EXAMPLE_OUTPUT_SHA256,
    EXAMPLE_SOURCE_SHA256,
    EXAMPLE_TARGET_SHA256,
    View,
)
from gateway.http.validation import Body, Digest, FilingNumber, Identifier, MediaRole, parse_body
from gateway.keys.keyring import signer
from gateway.proxy import edits
from gateway.proxy.uploads import MAX_MEDIA_PARTS

log = logging.getLogger(__name__)

bp = Blueprint("decisions_api", __name__, url_prefix="/v1")

class Media(Body):
    role: MediaRole = Field(description="the media part's role, e.g. source; each role once")
    sha256: Digest = Field(description="lowercase hex SHA-256 of the exact bytes sent to the algorithm, "
                                       "e.g. the first column of `sha256sum photo.jpg`")


class DecisionTerms(Body):
    """What an edit asks for; shared by decision mode and the edit proxy."""

    operation: str = Field(json_schema_extra={"enum": list(OPERATIONS)})
    algorithm: FilingNumber = Field(description="the algorithm's filing number")
    consents: list[Identifier] = Field(max_length=16, description="ids of the consents of everyone edited, "
                                                                  "each once")

    @field_validator("operation")
    @classmethod
    def _known_operation(cls, value: str) -> str:
        if value not in OPERATIONS:
            raise ValueError(f"unknown operation; known: {', '.join(OPERATIONS)}")
        return value

    @field_validator("consents")
    @classmethod
    def _distinct_consents(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            # Naming a consent twice would count two uses of it for one edit.
            raise ValueError("each consent is named once")
        return value


class DecisionBody(DecisionTerms):
    media: list[Media] = Field(min_length=1, max_length=MAX_MEDIA_PARTS)

    @model_validator(mode="after")
    def _distinct_roles(self) -> DecisionBody:
        if len({m.role for m in self.media}) != len(self.media):
            raise ValueError("each media role is named once")
        return self


class OutcomeBody(Body):
    outcome: str = Field(json_schema_extra={"enum": list(OUTCOMES)})
    output_sha256: Digest | None = Field(default=None, description="lowercase hex SHA-256 of the edited output")

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, value: str) -> str:
        if value not in OUTCOMES:
            raise ValueError(f"outcome is one of {', '.join(OUTCOMES)}")
        return value


def require_scope_for(operation: str) -> None:
    """The scope follows the operation's modality: edit:face for faces, edit:voice for voices."""
    scope = scope_for(modality_of(operation))
    if scope not in g.token_scopes:
        raise Problem(403, "insufficient_scope", f"{operation} needs the scope {scope}",
                      headers={"WWW-Authenticate": f'Bearer error="insufficient_scope" scope="{scope}"'})


def decide(terms: DecisionTerms | edits.EditTerms, media: dict[str, str],
           binding: BindingCheck | None = None) -> decisions.DecisionResult:
    """Run a decision for the authenticated app in the request's session (committed by the caller)."""
    now = utcnow()
    request = DecisionRequest(client_id=g.client_id, operation=terms.operation, algorithm=terms.algorithm,
                              consent_ids=tuple(terms.consents), media=media, binding=binding)
    return decisions.make_decision(db.session, request, signer=signer(db.session), actor=calling_app(),
                                   journal=request_journal(now), now=now,
                                   settings=decisions.DecisionSettings.from_config(current_app.config))


def deny_response(result: decisions.DecisionResult) -> Response:
    decision = result.decision
    assert decision.reason is not None
    g.problem_code = decision.reason.value
    return problem_response(Problem(
        403, decision.reason.value, decision.detail or None, title="Decision denied",
        reason=decision.reason.value, decision_id=result.id, consent_id=decision.consent_id,
    ))


def allow_body(result: decisions.DecisionResult) -> dict[str, Any]:
    assert result.ticket_expires_at is not None
    return {
        "decision_id": result.id,
        "allowed": True,
        "ticket": result.ticket,
        "expires_at": format_time(result.ticket_expires_at),
        "operation": result.request.operation,
        "algorithm": result.request.algorithm,
        "consents": list(result.request.consent_ids),
        "media": dict(result.request.media),
    }


@bp.post("/decisions")
@require()
def create_decision() -> Response | tuple[Response, int]:
    body = parse_body(DecisionBody)
    require_scope_for(body.operation)
    result = decide(body, {m.role: m.sha256 for m in body.media})
    # The decision and its audit entry commit before the answer is rendered: on SQLite that ends the
    # write lock sooner for every other writer.
    commit_early()
    if not result.decision.allowed:
        return deny_response(result)
    return jsonify(allow_body(result)), 201


@bp.post("/decisions/<decision_id>/outcome")
@require()
def record_outcome(decision_id: str) -> Response:
    body = parse_body(OutcomeBody)
    require_scope_for(decisions.get_decision(db.session, decision_id, client_id=g.client_id).operation)
    now = utcnow()
    row = decisions.record_outcome(
        db.session, decision_id, client_id=g.client_id, outcome=body.outcome, output_sha256=body.output_sha256,
        actor=calling_app(), journal=request_journal(now), now=now,
    )
    return jsonify(decision_id=row.id, outcome=row.outcome, output_sha256=row.output_sha256)


# --- OpenAPI ------------------------------------------------------------------------------------


class DecisionAllowed(View):
    """An allowed decision: a ticket for the algorithm, bound to this app, operation, consents and media."""

    decision_id: str = Field(pattern="^dec_", description="names the decision in its outcome and the audit log")
    allowed: Literal[True]
    ticket: str = Field(description="compact JWS, typ consent-ticket+jwt, audience the algorithm's filing "
                                    "number; send it with the edit (verifiable with /.well-known/jwks.json)")
    expires_at: datetime = Field(description="the ticket's exp: it is good for seconds, not minutes")
    operation: str = Field(json_schema_extra={"enum": list(OPERATIONS)})
    algorithm: str = Field(description="the filing number, as asked")
    consents: list[str] = Field(description="the consents that allowed it, each now used once more")
    media: dict[str, str] = Field(description="media role -> the SHA-256 hex the ticket is bound to",
                                  json_schema_extra={"additionalProperties": {
                                      "type": "string", "pattern": f"^{SHA256_HEX_PATTERN.pattern}$"}})


class OutcomeRecorded(View):
    """The outcome of an allowed decision, as recorded (once)."""

    decision_id: str = Field(pattern="^dec_")
    outcome: str = Field(json_schema_extra={"enum": list(OUTCOMES)})
    output_sha256: str | None = Field(description="SHA-256 hex of the edited output, when given")


_TICKET = (
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImtUQjNrUDZ2c1Y3U20iLCJ0eXAiOiJjb25zZW50LXRpY2tldCtqd3QifQ.eyJhdWQiOiJCSi0yM"
    "DI0LTAwNDIiLCJjbGllbnRfaWQiOiJjbGlfSDVGVHhyMTNpMmZDQmJMVTg5eXdaQSIsImNvbnNlbnRzIjpbImNuc18yQ0Z1WVBkMDhhd"
    "DFRa2I3VERwYUMyNTQiXSwiZXhwIjoxNzk2MDcyNTkzLCJpYXQiOjE3OTYwNzI1MzMsImlzcyI6Imh0dHBzOi8vY29uc2VudC5leGFtc"
    "GxlLmNvbSIsImp0aSI6ImRlY19qdzRzMURFUXNiT0JYZHo5MXl6UFVfUEwiLCJtZWRpYSI6eyJzb3VyY2UiOiI2ZTMxMmY1ZDQ1ZjQ4Y"
    "Tk3NGRlODFjYWFmYjY4YWEzM2I4MWIwNDUyZjViZTM2ODU3MDM4NzgyODk5NWU5NTBjIiwidGFyZ2V0IjoiNjkzMTgxMDA0MzAxMDlmM"
    "Dc4MmJhZjNhYmE0OGM0M2QzYTA2N2VjN2ZjN2UyODY2NjIyZDNlMjU3OWVjMjU4ZiJ9LCJvcGVyYXRpb24iOiJmYWNlX3N3YXAifQ.iW"
    "HLtw29tAohJSrkRldsG_ftTKSCtthhde7P4ujxAY13Ini2ymhp5ewcjKt_qqMvbQSXDkkyIBIMfs9YEwHjDw"
)

_DECISION_REQUEST = openapi.example(
    "Face swap of photo.jpg into frame.jpg",
    {"operation": "face_swap", "algorithm": EXAMPLE_FILING_NUMBER, "consents": [EXAMPLE_CONSENT_ID],
     "media": [{"role": "source", "sha256": EXAMPLE_SOURCE_SHA256},
               {"role": "target", "sha256": EXAMPLE_TARGET_SHA256}]},
    description="Each media digest is the lowercase hex SHA-256 of the exact bytes you will send to the "
                "algorithm: the first column of `sha256sum photo.jpg` (or "
                "`hashlib.sha256(data).hexdigest()`). The ticket is bound to these digests, so the "
                "algorithm refuses other bytes. `consents` names the consent of everyone edited.",
)
_DECISION_ALLOWED = openapi.example(
    "Allowed: a ticket for BJ-2024-0042, good for 60 seconds",
    {"decision_id": EXAMPLE_DECISION_ID, "allowed": True, "ticket": _TICKET, "expires_at": "2026-11-30T21:03:13Z",
     "operation": "face_swap", "algorithm": EXAMPLE_FILING_NUMBER, "consents": [EXAMPLE_CONSENT_ID],
     "media": {"source": EXAMPLE_SOURCE_SHA256, "target": EXAMPLE_TARGET_SHA256}},
    description=f"The ticket's claims: iss, jti (the decision id), aud (the filing number), iat, exp, "
                f"client_id ({EXAMPLE_CLIENT_ID}), operation, consents, media and binding (`checked` when the "
                "gateway matched every face in the media with the named people's templates, else `not_checked`).",
)

_EDIT_SCOPES = {"security": [{"oauth2": ["edit:face"]}, {"oauth2": ["edit:voice"]}]}
# Every deny reason the policy has, so the document cannot fall behind it.
DENIED = openapi.problem(
    f"denied: `code` and `reason` are one of {', '.join(reason.value for reason in DenyReason)}; or "
    "insufficient_scope. `binding_requires_media`: the consent was granted with a face template, so only "
    "POST /v1/edits (which sees the media) can use it. `media_not_covered` / `unreadable_media` (POST /v1/edits, "
    "whatever the consent): a part whose bytes are media the operation does not edit (an image or video under a "
    "voice operation, audio under a face swap), or no image, video or audio the gateway can read."
)

PATHS: dict[str, Any] = {
    "/v1/decisions": {
        "post": {
            "summary": "Ask for a decision; an allow carries a signed ticket (edit:face or edit:voice, "
                       "following the operation)",
            "tags": ["decisions"],
            **_EDIT_SCOPES,
            "requestBody": openapi.json_body(DecisionBody, {"face_swap": _DECISION_REQUEST}),
            "responses": {"201": {**openapi.json_response("allowed, with a ticket", DecisionAllowed,
                                                          {"allowed": _DECISION_ALLOWED}),
                                  "links": {"RecordOutcome": {
                                      "operationId": "recordOutcome",
                                      "parameters": {"decision_id": "$response.body#/decision_id"},
                                      "description": "report whether the allowed edit completed"}}},
                          "401": openapi.problem(), "403": DENIED, "422": openapi.problem(),
                          "503": openapi.problem("no decision possible now (fail closed)")},
        }
    },
    "/v1/decisions/{decision_id}/outcome": {
        "post": {
            "summary": "Record once whether the allowed edit completed or failed, with the output digest",
            "operationId": "recordOutcome",
            "tags": ["decisions"],
            **_EDIT_SCOPES,
            "parameters": [openapi.path_parameter("decision_id", EXAMPLE_DECISION_ID,
                                                  "the decision_id of an allowed decision")],
            "requestBody": openapi.json_body(OutcomeBody, {
                "completed": openapi.example(
                    "The edit completed", {"outcome": "completed", "output_sha256": EXAMPLE_OUTPUT_SHA256},
                    description="output_sha256: `sha256sum edited.jpg` of what the algorithm returned"),
                "failed": openapi.example("The algorithm failed; nothing was produced", {"outcome": "failed"}),
            }),
            "responses": {"200": openapi.json_response("recorded", OutcomeRecorded, {
                              "completed": openapi.example("Recorded as completed", {
                                  "decision_id": EXAMPLE_DECISION_ID, "outcome": "completed",
                                  "output_sha256": EXAMPLE_OUTPUT_SHA256})}),
                          "401": openapi.problem(),
                          "404": openapi.problem("decision_not_found"),
                          "409": openapi.problem("outcome_already_recorded / decision_denied")},
        }
    },
}
