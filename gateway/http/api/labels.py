"""``POST /v1/labels/verify``: anyone uploads a file and learns whether its AIGC label is ours, and where
the file comes from (decision, algorithm, app, consents and whether they are still active). Nothing is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem
from gateway.http import openapi
from gateway.http.schemas import View, absent
from gateway.labels.service import verify_file

bp = Blueprint("labels_api", __name__, url_prefix="/v1")

FILE_PART = "file"


@bp.post("/labels/verify")
def verify_label() -> Response:
    # Files are larger than JSON bodies: the edit upload limit applies, checked as the body is read.
    request.max_content_length = int(current_app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    if request.mimetype != "multipart/form-data":
        raise Problem(415, "unsupported_media_type", f"send the file as multipart/form-data, part {FILE_PART!r}")
    uploads = request.files.getlist(FILE_PART)
    if len(uploads) != 1:
        raise Problem(422, "validation_failed", f"send exactly one file, as the multipart part {FILE_PART!r}")
    upload = uploads[0]
    try:
        report = verify_file(db.session, upload.stream, issuer=str(current_app.config["ISSUER"]), now=utcnow())
    finally:
        upload.close()
    return jsonify(report)


# --- OpenAPI ------------------------------------------------------------------------------------

_FIELD = Field(description="as in the file")


class AigcLabel(View):
    """The AIGC object of GB 45438-2025 Annex E, as read from the file."""

    Label: str = Field(description='"1": generated or synthesised by AI')
    ContentProducer: str = Field(description="the operator's name or code (CONSENT_GATEWAY_LABEL_PRODUCER)")
    ProduceID: str = Field(description="the decision id")
    ReservedCode1: str = Field(description="the gateway's signature: compact JWS, detached payload")
    ContentPropagator: str = Field(description="the app (OAuth client id) that received the output")
    PropagateID: str = _FIELD
    ReservedCode2: str = _FIELD


class VerifyError(View):
    code: str = Field(description="unsupported_format, label_missing, label_malformed, label_bad_signature "
                                  "(a field altered), label_content_mismatch (the media changed or the label "
                                  "was moved), label_unknown_key, label_wrong_issuer, label_wrong_type, "
                                  "label_algorithm_not_allowed")
    detail: str


class DecisionFacts(View):
    id: str = Field(pattern="^dec_")
    operation: str
    decided_at: datetime
    outcome: Literal["completed", "failed"] | None
    outcome_at: datetime | None
    received_by_app: bool = Field(description="the file is byte for byte what the app received (the outcome's "
                                              "output_sha256)")


class AlgorithmFacts(View):
    filing_number: str
    name: str | None = Field(description="null if the filing number is not in the white list")
    provider: str | None
    status: Literal["active", "suspended"] | None


class AppFacts(View):
    client_id: str
    name: str | None


class ConsentFacts(View):
    id: str = Field(pattern="^cns_")
    status: str | None = Field(description="the consent's status now; null if it is not in our records")
    active: bool


class LabelVerification(View):
    """The report: ``valid`` with where the file comes from, or not ``valid`` with why."""

    valid: bool
    file_sha256: str = Field(pattern="^[0-9a-f]{64}$", description="SHA-256 of the whole file")
    error: VerifyError | SkipJsonSchema[None] = absent("why the label does not verify")
    claimed: AigcLabel | SkipJsonSchema[None] = absent("what an unverifiable label says, unproven")
    container: Literal["png", "jpeg", "wav", "mp3", "mp4"] | SkipJsonSchema[None] = absent(
        "mp4 also for M4A and other ISO BMFF files")
    content_sha256: str | SkipJsonSchema[None] = absent("SHA-256 of the media without the label")
    kid: str | SkipJsonSchema[None] = absent("the signing key (retired keys still verify)")
    signed_at: datetime | SkipJsonSchema[None] = absent()
    label: AigcLabel | SkipJsonSchema[None] = absent()
    decision: DecisionFacts | None = Field(None, description="null if not in our records")
    algorithm: AlgorithmFacts | SkipJsonSchema[None] = absent()
    app: AppFacts | SkipJsonSchema[None] = absent()
    operation: str | SkipJsonSchema[None] = absent()
    consents: list[ConsentFacts] | SkipJsonSchema[None] = absent()
    consents_active: bool | SkipJsonSchema[None] = absent("every consent the edit ran under is still active")


_DECISION_ID = "dec_jw4s1DEQsbOBXdz91yzPU_PL"
_CLIENT_ID = "cli_H5FTxr13i2fCBbLU89ywZA"
_CONSENT_ID = "cns_2CFuYPd08at1Qkb7TDpaC254"
_FILE_SHA256 = "1fb9f4097256db2d7b1e13aff79cee44339891a31c556b9cf6093885773b3618"
_LABEL = {
    "Label": "1", "ContentProducer": "https://consent.example.com", "ProduceID": _DECISION_ID,
    "ReservedCode1": "eyJhbGciOiJFZERTQSIsImtpZCI6ImtUQjNrUDZ2c1Y3U20iLCJ0eXAiOiJhaWdjLWxhYmVsK2p3cyJ9.."
                     "dGhlIEVkMjU1MTkgc2lnbmF0dXJlIG9mIHRoZSBoZWFkZXIgYW5kIHRoZSBkZXRhY2hlZCBwYXlsb2FkLCA2NCBieXRlcw",
    "ContentPropagator": _CLIENT_ID, "PropagateID": "", "ReservedCode2": "",
}
_VALID = {
    "valid": True, "file_sha256": _FILE_SHA256, "container": "png",
    "content_sha256": "69318100430109f0782baf3aba48c43d3a067ec7fc7e2866622d3e2579ec258f",
    "kid": "kTB3kP6vsV7Sm", "signed_at": "2026-05-01T12:00:03Z", "label": _LABEL,
    "decision": {"id": _DECISION_ID, "operation": "face_swap", "decided_at": "2026-05-01T12:00:01Z",
                 "outcome": "completed", "outcome_at": "2026-05-01T12:00:03Z", "received_by_app": True},
    "algorithm": {"filing_number": "BJ-2024-0042", "name": "FaceFusion Pro", "provider": "Acme Vision",
                  "status": "active"},
    "app": {"client_id": _CLIENT_ID, "name": "Birthday Videos"}, "operation": "face_swap",
    "consents": [{"id": _CONSENT_ID, "status": "withdrawn", "active": False}], "consents_active": False,
}
_MOVED = {
    "valid": False, "file_sha256": _FILE_SHA256, "claimed": _LABEL,
    "error": {"code": "label_content_mismatch", "detail": "the label was signed for other content: the media "
              "were changed after labelling, or the label was copied from another file"},
}

PATHS: dict[str, Any] = {
    "/v1/labels/verify": {
        "post": {
            "summary": "Verify the AIGC label of a file from the gateway and say where the file comes from",
            "description": "Public; nothing is stored. The label (GB 45438-2025 implicit label, key AIGC: XMP in "
                           "PNG/JPEG, ID3 TXXX in WAV/MP3, the AIGC item in MP4/M4A) is checked against the "
                           "gateway's keys, retired ones included, and against the file's bytes. A file that "
                           "cannot be verified still gets a 200 report with `valid: false` and `error.code`. "
                           "docs/LABELS.md defines what is signed.",
            "tags": ["labels"],
            "requestBody": {"required": True, "content": {"multipart/form-data": openapi.media({
                "type": "object", "required": [FILE_PART],
                # Any bytes are a file (no "type": a part that reads "true" is still a file, not a boolean).
                "properties": {FILE_PART: {"contentMediaType": "application/octet-stream",
                                           "description": "the file as received from the gateway"}},
            }, {"file": openapi.example(
                "An edited image",
                description="`curl -F file=@edited.png https://consent.example.com/v1/labels/verify`")})}},
            "responses": {
                "200": openapi.json_response("verification report", LabelVerification, {
                    "valid": openapi.example("A labelled image whose consent was withdrawn since", _VALID),
                    "moved": openapi.example("A label copied onto another file", _MOVED),
                }),
                "413": openapi.problem("payload_too_large: larger than CONSENT_GATEWAY_MAX_UPLOAD_MB"),
                "415": openapi.problem("not multipart/form-data"),
                "422": openapi.problem("no file part, or more than one"),
            },
        }
    }
}
