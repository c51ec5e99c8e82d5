"""Proxy mode: the app sends the media here; the gateway decides, forwards, and streams the edit back.

The order of commits is the point of this module:

1. the token lookup's transaction ends before the upload is read, so a long upload holds no database
   transaction (on SQLite: no write lock);
2. the decision (a use taken, its audit entry) commits *before* any media leave the gateway, so no
   edit can run on a decision that was never stored;
3. the outcome commits after the upstream answered (failed: in this request; completed or cut off:
   when the stream back to the app ends).

Temporary files are closed (and so gone) as soon as the upstream has the media, and on every other
path through the ``with`` block.
"""

from __future__ import annotations

import json
import logging
import tempfile
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState
from pydantic import Field

from gateway.auditing.trail import SYSTEM
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, map_exception, problem_response
from gateway.decisions import service as decisions
from gateway.decisions.models import OUTCOME_COMPLETED, OUTCOME_FAILED
from gateway.http import openapi
from gateway.http.api.decisions import DecisionTerms, decide, deny_response, require_scope_for
from gateway.http.validation import parse_value
from gateway.proxy import upstream
from gateway.proxy.uploads import REQUEST_PART, UploadError, receive
from gateway.registry.algorithms import get_algorithm

log = logging.getLogger(__name__)

bp = Blueprint("edits_api", __name__, url_prefix="/v1")


@bp.record_once
def _bind_upstream(state: BlueprintSetupState) -> None:
    # The proxy's HTTP client lives with the blueprint that uses it: one pooled client per app.
    app = state.app
    assert isinstance(app, Flask)
    upstream.init_app(app)


_EDIT_SCOPES = ("edit:face", "edit:voice")


_UPLOAD_STATUS = {"unsupported_media_type": 415, "insufficient_storage": 507}


def _upload_problem(exc: Exception) -> Problem:
    assert isinstance(exc, UploadError)
    # A full upload folder is temporary (RFC 4918's 507): the app may retry, nothing was decided.
    headers = {"Retry-After": "30"} if exc.code == "insufficient_storage" else None
    return Problem(_UPLOAD_STATUS.get(exc.code, 400), exc.code, str(exc), headers=headers)


map_exception(UploadError, _upload_problem)


class EditTerms(DecisionTerms):
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="passed to the algorithm as they are (e.g. semitones)")


def _check_request_part(raw: bytes) -> None:
    _terms(raw)


def _terms(raw: bytes | None) -> EditTerms:
    if raw is None:
        raise Problem(422, "validation_failed", f"the multipart body needs a {REQUEST_PART!r} JSON part")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "malformed_json", f"the {REQUEST_PART!r} part is not valid JSON: {exc}") from exc
    terms = parse_value(EditTerms, payload)
    require_scope_for(terms.operation)
    return terms


@bp.post("/edits")
@require()
def create_edit() -> Response:
    if not _may_edit_something():
        raise Problem(403, "insufficient_scope", "edits need the scope edit:face or edit:voice",
                      headers={"WWW-Authenticate": 'Bearer error="insufficient_scope" scope="edit:face edit:voice"'})
    db.session.commit()  # 1. (see the module docstring)
    config = current_app.config
    with receive(request, upload_dir=_upload_dir(), max_bytes=int(config["MAX_UPLOAD_MB"]) * 1024 * 1024,
                 on_request_part=_check_request_part) as upload:
        terms = _terms(upload.request_json)
        if not upload.parts:
            raise Problem(422, "validation_failed", "send at least one media part, named by its role")
        result = decide(terms, upload.digests)
        if not result.decision.allowed:
            return deny_response(result)
        algorithm = get_algorithm(db.session, terms.algorithm)
        # An allow names a registered algorithm and carries a ticket.
        assert algorithm is not None
        assert result.ticket is not None
        upstream_url = algorithm.upstream_url
        db.session.commit()  # 2.
        context = upstream.EditContext(
            decision_id=result.id, client_id=g.client_id, operation=terms.operation,
            algorithm=terms.algorithm, consents=tuple(terms.consents), media=upload.digests,
        )
        try:
            reply = upstream.forward(upstream_url, ticket=result.ticket, context=context,
                                     parameters=terms.parameters, parts=upload.parts,
                                     request_id=g.get("request_id"))
        except upstream.UpstreamError as exc:
            return _failed(context, exc)
    return _streamed(reply, context)


def _may_edit_something() -> bool:
    # Checked before the body is read, so an app that may edit nothing cannot make the gateway
    # spool an upload; the exact scope for the operation is checked once the request part is read.
    return any(scope in g.token_scopes for scope in _EDIT_SCOPES)


def _upload_dir() -> str:
    return str(current_app.config["UPLOAD_DIR"] or "") or tempfile.gettempdir()


def _failed(context: upstream.EditContext, exc: upstream.UpstreamError) -> Response:
    """3. (failed): the outcome and its audit entry commit with this 502, so it is returned, not raised."""
    decisions.record_outcome(
        db.session, context.decision_id, client_id=context.client_id, outcome=OUTCOME_FAILED,
        output_sha256=None, actor=SYSTEM, now=utcnow(),
        extra={"reason": exc.code, "upstream_status": exc.status, "upstream_code": exc.upstream_code},
    )
    g.problem_code = exc.code
    return problem_response(Problem(
        502, exc.code, str(exc), title="Bad gateway", decision_id=context.decision_id,
        upstream_status=exc.status, upstream_code=exc.upstream_code,
        headers={upstream.CONSENT_DECISION_HEADER: context.decision_id},
    ))


def _streamed(reply: upstream.Reply, context: upstream.EditContext) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # The stream outlives the request context, so what the audit entry needs is taken now.
    request_id = g.get("request_id")

    def on_done(completed: bool, output_sha256: str | None) -> None:
        # 3. (completed or cut off): the request's own transaction is long committed, so a unit of work.
        extra = {"request_id": request_id} if completed else {"request_id": request_id,
                                                               "reason": "stream_interrupted"}
        try:
            with app.app_context(), db.unit_of_work() as session:
                decisions.record_outcome(
                    session, context.decision_id, client_id=context.client_id,
                    outcome=OUTCOME_COMPLETED if completed else OUTCOME_FAILED,
                    output_sha256=output_sha256, actor=SYSTEM, now=utcnow(), extra=extra,
                )
        except Exception:
            log.exception("could not record the outcome of %s", context.decision_id)

    output, relay = upstream.relay(reply, context, on_done)
    response = Response(relay.chunks(), status=200, content_type=output.content_type)
    response.call_on_close(relay.close)
    for name, value in output.headers.items():
        response.headers[name] = value
    response.headers[upstream.CONSENT_DECISION_HEADER] = context.decision_id
    return response


_MULTIPART = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": [REQUEST_PART],
            "properties": {
                REQUEST_PART: {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "JSON: operation, algorithm (filing number), consents, optional parameters. "
                                   "Send it first so a refusal comes before the media are uploaded.",
                },
            },
            "additionalProperties": {"type": "string", "contentMediaType": "application/octet-stream",
                                     "description": "one file part per media role (source, target, audio…)"},
        }
    }
}

PATHS: dict[str, Any] = {
    "/v1/edits": {
        "post": {
            "summary": "Edit through the gateway: decide, forward to the algorithm with a ticket, stream the "
                       "result back (edit:face or edit:voice, following the operation)",
            "tags": ["edits"],
            "security": [{"oauth2": ["edit:face"]}, {"oauth2": ["edit:voice"]}],
            "requestBody": {"required": True, "content": _MULTIPART},
            "responses": {
                "200": {"description": "the edited media, streamed; header Consent-Decision names the decision",
                        "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                            "format": "binary"}}}},
                "400": openapi.problem("malformed_upload / malformed_json"),
                "401": openapi.problem(),
                "403": openapi.problem("denied (a stable deny reason) or insufficient_scope"),
                "413": openapi.problem("payload_too_large: CONSENT_GATEWAY_MAX_UPLOAD_MB exceeded"),
                "415": openapi.problem("not multipart/form-data"),
                "422": openapi.problem(),
                "502": openapi.problem("upstream_timeout / upstream_unreachable / upstream_refused / "
                                       "upstream_failed; the outcome is recorded as failed"),
                "503": openapi.problem("no decision possible now (fail closed)"),
                "507": openapi.problem("insufficient_storage: no room to spool the upload now (Retry-After); "
                                       "nothing was decided"),
            },
        }
    }
}
