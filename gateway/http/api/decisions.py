"""Decision mode: an app asks whether it may run an edit and gets a signed ticket or a reason.

A denied decision is *returned* as a 403 problem, not raised, so that the request boundary commits
it together with its audit entry (raising would roll both back).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify
from pydantic import Field, field_validator, model_validator

from consent.operations import OPERATIONS, modality_of, scope_for
from consent.policy import DecisionRequest
from consent.records import MEDIA_ROLE_PATTERN, SHA256_HEX_PATTERN
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, problem_response
from gateway.core.times import format_time
from gateway.decisions import service as decisions
from gateway.decisions.models import OUTCOMES
from gateway.http import openapi
from gateway.http.context import calling_app, request_journal
from gateway.http.validation import Body, parse_body
from gateway.keys.keyring import signer
from gateway.proxy import edits

log = logging.getLogger(__name__)

bp = Blueprint("decisions_api", __name__, url_prefix="/v1")

class Media(Body):
    role: str = Field(pattern=MEDIA_ROLE_PATTERN.pattern, description="the media part's role, e.g. source")
    sha256: str = Field(pattern=SHA256_HEX_PATTERN.pattern, description="lowercase hex SHA-256 of its bytes")

    @field_validator("sha256", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class DecisionTerms(Body):
    """What an edit asks for; shared by decision mode and the edit proxy."""

    operation: str = Field(json_schema_extra={"enum": list(OPERATIONS)})
    algorithm: str = Field(min_length=1, max_length=100, description="the algorithm's filing number")
    consents: list[str] = Field(max_length=16, description="ids of the consents of everyone edited")

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
        if any(not item or len(item) > 64 for item in value):
            raise ValueError("a consent id is 1 to 64 characters")
        return value


class DecisionBody(DecisionTerms):
    media: list[Media] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _distinct_roles(self) -> DecisionBody:
        if len({m.role for m in self.media}) != len(self.media):
            raise ValueError("each media role is named once")
        return self


class OutcomeBody(Body):
    outcome: str = Field(json_schema_extra={"enum": list(OUTCOMES)})
    output_sha256: str | None = Field(default=None, pattern=SHA256_HEX_PATTERN.pattern)

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


def decide(terms: DecisionTerms | edits.EditTerms, media: dict[str, str]) -> decisions.DecisionResult:
    """Run a decision for the authenticated app in the request's session (committed by the caller)."""
    now = utcnow()
    request = DecisionRequest(client_id=g.client_id, operation=terms.operation, algorithm=terms.algorithm,
                              consent_ids=tuple(terms.consents), media=media)
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


_EDIT_SCOPES = {"security": [{"oauth2": ["edit:face"]}, {"oauth2": ["edit:voice"]}]}
_DENIED = openapi.problem(
    "denied: `code` and `reason` are one of missing_consent, algorithm_not_registered, algorithm_suspended, "
    "consent_not_found, consent_not_for_client, consent_withdrawn, consent_revoked, consent_expired, "
    "consent_exhausted, operation_not_consented, algorithm_not_consented; or insufficient_scope"
)
_ALLOWED = {
    "type": "object",
    "required": ["decision_id", "allowed", "ticket", "expires_at"],
    "properties": {
        "decision_id": {"type": "string"},
        "allowed": {"type": "boolean", "const": True},
        "ticket": {"type": "string", "description": "compact JWS, typ consent-ticket+jwt"},
        "expires_at": {"type": "string", "format": "date-time"},
        "operation": {"type": "string"},
        "algorithm": {"type": "string"},
        "consents": {"type": "array", "items": {"type": "string"}},
        "media": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

PATHS: dict[str, Any] = {
    "/v1/decisions": {
        "post": {
            "summary": "Ask for a decision; an allow carries a signed ticket (edit:face or edit:voice, "
                       "following the operation)",
            "tags": ["decisions"],
            **_EDIT_SCOPES,
            "requestBody": openapi.json_body(DecisionBody),
            "responses": {"201": openapi.json_response("allowed, with a ticket", _ALLOWED),
                          "401": openapi.problem(), "403": _DENIED, "422": openapi.problem(),
                          "503": openapi.problem("no decision possible now (fail closed)")},
        }
    },
    "/v1/decisions/{decision_id}/outcome": {
        "post": {
            "summary": "Record once whether the allowed edit completed or failed, with the output digest",
            "tags": ["decisions"],
            **_EDIT_SCOPES,
            "parameters": [{"name": "decision_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": openapi.json_body(OutcomeBody),
            "responses": {"200": openapi.json_response("recorded"), "401": openapi.problem(),
                          "404": openapi.problem("decision_not_found"),
                          "409": openapi.problem("outcome_already_recorded / decision_denied")},
        }
    },
}
