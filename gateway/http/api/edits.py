"""Proxy mode over HTTP: parse the multipart edit, run it (``gateway.proxy.edits``), render the answer."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState
from pydantic import Field

from consent.policy import BindingCheck
from gateway.auth.oauth import require
from gateway.biometrics import binding
from gateway.core.db import db
from gateway.core.problems import Problem, problem_response
from gateway.http import openapi
from gateway.http.api.decisions import DecisionTerms, decide, deny_response, require_scope_for
from gateway.http.schemas import EXAMPLE_CONSENT_ID, EXAMPLE_DECISION_ID, EXAMPLE_FILING_NUMBER, EXAMPLE_ISSUER
from gateway.http.validation import Identifier, load_json, parse_value
from gateway.keys.contacts import vault
from gateway.proxy import edits, upstream
from gateway.proxy.uploads import REQUEST_PART

bp = Blueprint("edits_api", __name__, url_prefix="/v1")


@bp.record_once
def _bind_upstream(state: BlueprintSetupState) -> None:
    # The proxy's HTTP client lives with the blueprint that uses it: one pooled client per app.
    app = state.app
    assert isinstance(app, Flask)
    upstream.init_app(app)


_EDIT_SCOPES = ("edit:face", "edit:voice")


class EditBody(DecisionTerms):
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="passed to the algorithm as they are (e.g. semitones)")
    reference: Identifier | None = Field(
        default=None, description="the app's own id for this output; the AIGC label carries it as PropagateID")


def _terms(raw: bytes | None) -> edits.EditTerms:
    if raw is None:
        raise Problem(422, "validation_failed", f"the multipart body needs a {REQUEST_PART!r} JSON part")
    # Bounded nesting and a 400 for anything that is not JSON, like every JSON body of the API.
    body = parse_value(EditBody, load_json(raw, f"the {REQUEST_PART!r} part"))
    require_scope_for(body.operation)
    return edits.EditTerms(operation=body.operation, algorithm=body.algorithm, consents=tuple(body.consents),
                           parameters=body.parameters, reference=body.reference or "")


def _bind(terms: edits.EditTerms, media: list[binding.MediaFile]) -> BindingCheck | None:
    return binding.check_media(db.session, vault(), operation=terms.operation, consent_ids=terms.consents,
                               media=media, settings=binding.BindingSettings.from_config(current_app.config))


@bp.post("/edits")
@require()
def create_edit() -> Response:
    if not any(scope in g.token_scopes for scope in _EDIT_SCOPES):
        # Checked before the body is read, so an app that may edit nothing cannot make the gateway
        # spool an upload; the exact scope for the operation is checked once the request part is read.
        raise Problem(403, "insufficient_scope", "edits need the scope edit:face or edit:voice",
                      headers={"WWW-Authenticate": 'Bearer error="insufficient_scope" scope="edit:face edit:voice"'})
    config = current_app.config
    upload = edits.Upload(upload_dir=str(config["UPLOAD_DIR"] or "") or tempfile.gettempdir(),
                          max_bytes=int(config["MAX_UPLOAD_MB"]) * 1024 * 1024, read_terms=_terms)
    result = edits.run_edit(current_app._get_current_object(), request, upload,  # type: ignore[attr-defined]
                            client_id=g.client_id, request_id=g.get("request_id"), decide=decide, bind=_bind)
    if isinstance(result, edits.Denied):
        return deny_response(result.result)
    if isinstance(result, edits.Failed):
        return _failed(result)
    return _streamed(result)


def _failed(result: edits.Failed) -> Response:
    # Returned, not raised: the failed outcome and its audit entry commit with this 502.
    exc, decision_id = result.error, result.context.decision_id
    g.problem_code = exc.code
    return problem_response(Problem(
        502, exc.code, str(exc), title="Bad gateway", decision_id=decision_id,
        upstream_status=exc.status, upstream_code=exc.upstream_code,
        headers={upstream.CONSENT_DECISION_HEADER: decision_id},
    ))


def _streamed(result: edits.Relayed) -> Response:
    response = Response(result.relay.chunks(), status=200, content_type=result.output.content_type)
    response.call_on_close(result.relay.close)
    for name, value in result.output.headers.items():
        response.headers[name] = value
    response.headers[upstream.CONSENT_DECISION_HEADER] = result.context.decision_id
    return response


_EDIT_TERMS = json.dumps({"operation": "face_swap", "algorithm": EXAMPLE_FILING_NUMBER,
                          "consents": [EXAMPLE_CONSENT_ID]}, separators=(",", ":"))
_MULTIPART = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": [REQUEST_PART],
            "properties": {
                REQUEST_PART: {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": openapi.schema_of(EditBody),
                    "description": "JSON: operation, algorithm (filing number), consents, optional parameters. "
                                   "Send it first so a refusal comes before the media are uploaded.",
                },
            },
            "additionalProperties": {"type": "string", "contentMediaType": "application/octet-stream",
                                     "description": "one file part per media role (source, target, audio…)"},
        },
        "examples": {"face_swap": openapi.example(
            "Face swap: the request part first, then photo.jpg as source and frame.jpg as target",
            {REQUEST_PART: _EDIT_TERMS, "source": "<the bytes of photo.jpg>",
             "target": "<the bytes of frame.jpg>"},
            description="The gateway hashes each media part as it arrives; the algorithm gets them with a "
                        "ticket bound to those digests. With curl:\n\n"
                        "```\ncurl -H \"Authorization: Bearer $TOKEN\" \\\n"
                        f"  -F 'request={_EDIT_TERMS};type=application/json' \\\n"
                        "  -F source=@photo.jpg -F target=@frame.jpg \\\n"
                        f"  -o edited.jpg {EXAMPLE_ISSUER}/v1/edits\n```",
        )},
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
                        "headers": {upstream.CONSENT_DECISION_HEADER: {
                            "description": "the decision the edit ran under (its outcome is recorded by the "
                                           "gateway)",
                            "schema": {"type": "string"}, "example": EXAMPLE_DECISION_ID}},
                        "content": {"application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"},
                            "examples": {"edited": openapi.example(
                                "The edited image, as the algorithm returned it",
                                description="Streamed with the algorithm's own Content-Type (e.g. image/jpeg); "
                                            "save it as it comes, e.g. curl -o edited.jpg.")}}}},
                "400": openapi.problem("malformed_upload / malformed_json / json_too_deep"),
                "401": openapi.problem(),
                "403": openapi.problem("denied (a stable deny reason; biometric_mismatch names the part, the "
                                       "frame, the distance and the threshold) or insufficient_scope"),
                "413": openapi.problem("payload_too_large: CONSENT_GATEWAY_MAX_UPLOAD_MB exceeded"),
                "415": openapi.problem("not multipart/form-data"),
                "422": openapi.problem(),
                "502": openapi.problem("upstream_timeout / upstream_unreachable / upstream_refused / "
                                       "upstream_failed, or the output could not be labelled (label_unsupported / "
                                       "label_unavailable / label_failed); the outcome is recorded as failed"),
                "503": openapi.problem("no decision possible now (fail closed); binding_unavailable: a named "
                                       "consent needs its face matched and the face models are not installed"),
                "507": openapi.problem("insufficient_storage: no room to spool the upload now (Retry-After); "
                                       "nothing was decided"),
            },
        }
    }
}
