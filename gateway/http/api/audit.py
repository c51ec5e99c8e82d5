"""Auditor access: entries, signed checkpoints, RFC 9162 proofs, verifier keys and the export bundle."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, Response, current_app, g, jsonify, stream_with_context
from pydantic import ConfigDict, Field

from audit import queries
from audit.proofs import consistency, inclusion
from gateway.auditing.export import ExportRange, export
from gateway.auditing.runner import verifier_keys
from gateway.auditing.trail import Party
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem
from gateway.core.times import format_time
from gateway.http import openapi
from gateway.http.schemas import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CONSENT_ID,
    EXAMPLE_DECISION_ID,
    EXAMPLE_FILING_NUMBER,
    EXAMPLE_KID,
    EXAMPLE_SOURCE_SHA256,
    EXAMPLE_SUBJECT_ID,
    EXAMPLE_TARGET_SHA256,
    View,
)
from gateway.http.validation import Query, Timestamp, parse_query

bp = Blueprint("audit_api", __name__, url_prefix="/v1/audit")

MAX_PAGE = 500
_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_SHARD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"



class EntriesQuery(Query):
    since: Timestamp | None = Field(None, description="RFC 3339, inclusive", examples=["2026-11-30T00:00:00Z"])
    until: Timestamp | None = Field(None, description="RFC 3339, exclusive", examples=["2026-12-01T00:00:00Z"])
    action: str | None = Field(None, pattern=_ID, description="e.g. decision.denied", examples=["decision.allowed"])
    subject: str | None = Field(None, pattern=_ID, description="sub_… id")
    client_id: str | None = Field(None, pattern=_ID, description="the app")
    consent_id: str | None = Field(None, pattern=_ID, description="cns_… id")
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


class CheckpointQuery(Query):
    shard: str | None = Field(None, pattern=_SHARD, description="YYYY-MM; default: the open shard",
                              examples=["2026-11"])


class InclusionQuery(Query):
    shard: str = Field(pattern=_SHARD, description="YYYY-MM", examples=["2026-11"])
    index: int = Field(ge=0, le=2**62, description="leaf index", examples=[3])
    size: int = Field(ge=1, le=2**62, description="tree size of a checkpoint", examples=[8])


class ConsistencyQuery(Query):
    shard: str = Field(pattern=_SHARD, description="YYYY-MM", examples=["2026-11"])
    old_size: int = Field(ge=1, le=2**62, description="older tree size", examples=[4])
    new_size: int = Field(ge=1, le=2**62, description="newer tree size", examples=[8])


class ExportQuery(Query):
    since: Timestamp | None = Field(None, description="RFC 3339 (default: 31 days before until)",
                                    examples=["2026-11-01T00:00:00Z"])
    until: Timestamp | None = Field(None, description="RFC 3339, exclusive (default: now)",
                                    examples=["2026-12-01T00:00:00Z"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@bp.get("/entries")
@require("audit:read")
def entries() -> Response:
    query = parse_query(EntriesQuery)
    if query.since is not None and query.until is not None and not query.since < query.until:
        # As for an export: a range that holds no instant is a mistake in the question, not an empty answer.
        raise Problem(400, "invalid_range", "since must be before until")
    where = queries.EntryFilter(since=query.since, until=query.until, action=query.action, subject=query.subject,
                                client_id=query.client_id, consent_id=query.consent_id)
    rows, cursor = queries.entries(db.session, where, query.limit, query.cursor)
    return jsonify(
        entries=[{"shard": r.shard, "index": r.seq, "leaf_hash": _b64(r.leaf_hash),
                  "entry": json.loads(r.body), "raw": r.body.decode()} for r in rows],
        next_cursor=cursor,
    )


@bp.get("/checkpoints/latest")
@require("audit:read")
def latest_checkpoint() -> Response:
    checkpoint = queries.latest_checkpoint(db.session, parse_query(CheckpointQuery).shard)
    if checkpoint is None:
        raise Problem(404, "no_checkpoint", "no checkpoint has been signed for that shard yet")
    return jsonify(shard=checkpoint.shard, size=checkpoint.size, root=_b64(checkpoint.root),
                   note=queries.checkpoint_note(db.session, checkpoint), kid=checkpoint.kid,
                   created_at=format_time(checkpoint.created_at))


@bp.get("/keys")
@require("audit:read")
def audit_keys() -> Response:
    return jsonify(vkeys=verifier_keys(db.session, current_app.config["ISSUER"]))


@bp.get("/proofs/inclusion")
@require("audit:read")
def inclusion_proof() -> Response:
    query = parse_query(InclusionQuery)
    path = inclusion(db.session, query.shard, query.index, query.size)
    return jsonify(shard=query.shard, index=query.index, size=query.size, proof=[_b64(h) for h in path])


@bp.get("/proofs/consistency")
@require("audit:read")
def consistency_proof() -> Response:
    query = parse_query(ConsistencyQuery)
    path = consistency(db.session, query.shard, query.old_size, query.new_size)
    return jsonify(shard=query.shard, old_size=query.old_size, new_size=query.new_size,
                   proof=[_b64(h) for h in path])


@bp.get("/export")
@require("audit:export")
def export_bundle() -> Response:
    query = parse_query(ExportQuery)
    now = utcnow()
    span = ExportRange.resolve(query.since, query.until, now)  # any range the CLI takes (docs/AUDIT.md)
    spool = export(current_app._get_current_object(), db.session, span, now,  # type: ignore[attr-defined]
                   party=Party("auditor", g.client_id), request_id=g.get("request_id"), client_id=g.client_id)
    name = f"audit-{span.since:%Y%m%dT%H%M%SZ}-{span.until:%Y%m%dT%H%M%SZ}.zip"

    def stream() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(256 * 1024):
                yield chunk

    return Response(stream_with_context(stream()), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- OpenAPI ------------------------------------------------------------------------------------

_BASE64_HASH = r"^[A-Za-z0-9+/]{43}=$"


class AuditActor(View):
    type: Literal["client", "subject", "admin", "auditor", "system"]
    id: str = Field(description="the client id, sub_… id, admin or auditor name, or the system component")


class AuditEntry(View):
    """An entry as logged; members beyond these depend on the action (client_id, subject, consent_id, …)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    action: str = Field(description="what happened, e.g. consent.granted, decision.allowed, decision.denied")
    actor: AuditActor
    ts: datetime
    seq: int = Field(ge=0, description="its index in the shard")
    shard: str = Field(pattern=_SHARD)


class AuditEntryView(View):
    shard: str = Field(pattern=_SHARD)
    index: int = Field(ge=0, description="leaf index in the shard's Merkle tree")
    leaf_hash: str = Field(pattern=_BASE64_HASH, description="RFC 9162 leaf hash of raw, base64")
    entry: AuditEntry
    raw: str = Field(description="the entry exactly as hashed (RFC 8785 canonical JSON)")


class AuditEntriesPage(View):
    """Entries in log order."""

    entries: list[AuditEntryView]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class CheckpointView(View):
    """A signed checkpoint of one shard's Merkle tree."""

    shard: str = Field(pattern=_SHARD)
    size: int = Field(ge=1, description="number of entries the tree holds")
    root: str = Field(pattern=_BASE64_HASH, description="RFC 9162 root hash, base64")
    note: str = Field(description="C2SP signed note: origin, size and root, signed (verify with /v1/audit/keys)")
    kid: str = Field(description="the signing key (as in /.well-known/jwks.json)")
    created_at: datetime


class VerifierKeys(View):
    """Signed-note verifier keys, retired ones included so old checkpoints still verify."""

    vkeys: list[str] = Field(description="name+key id (hex)+base64(0x01 || Ed25519 public key)")


class InclusionProof(View):
    """RFC 9162 inclusion proof of the entry at index in the tree of size entries."""

    shard: str = Field(pattern=_SHARD)
    index: int = Field(ge=0)
    size: int = Field(ge=1)
    proof: list[str] = Field(description="audit path, base64 hashes, leaf to root",
                             json_schema_extra={"items": {"pattern": _BASE64_HASH}})


class ConsistencyProof(View):
    """RFC 9162 consistency proof that the tree of old_size entries is a prefix of the tree of new_size."""

    shard: str = Field(pattern=_SHARD)
    old_size: int = Field(ge=1)
    new_size: int = Field(ge=1)
    proof: list[str] = Field(description="base64 hashes", json_schema_extra={"items": {"pattern": _BASE64_HASH}})


_ENTRY: dict[str, Any] = {
    "action": "decision.allowed", "actor": {"type": "client", "id": EXAMPLE_CLIENT_ID},
    "algorithm": EXAMPLE_FILING_NUMBER, "client_id": EXAMPLE_CLIENT_ID, "consent_id": EXAMPLE_CONSENT_ID,
    "consents": [EXAMPLE_CONSENT_ID], "decision_id": EXAMPLE_DECISION_ID,
    "media": {"source": EXAMPLE_SOURCE_SHA256, "target": EXAMPLE_TARGET_SHA256}, "operation": "face_swap",
    "request_id": "req_jOSLaictG6tRLs2P", "seq": 8, "shard": "2026-11", "subject": EXAMPLE_SUBJECT_ID,
    "ts": "2026-11-30T21:02:13.281460Z",
}
_PROOF = ["ZIYnoNnPm2oPdyxgKNOUnl3DxtMN7mO2Dm3HnK+nOyE=", "P0gqCTbiKodoN0HlgjML4CeNvOR5CIqL3tBIRLi8WEg=",
          "wyNKaVI7FqKRVuHlcCm8LD6XFvWpkFy/glOOedrN5Ks="]
_ROOT = "cI2FLkS7NTNyN8BYeAzSK3doc1efuTwte90tXQiu7OQ="
_NOTE = (f"consent.example.com/audit/2026-11\n8\n{_ROOT}\n\n\u2014 consent.example.com/audit "
         "60VZELQkzZ1f4gqX5Dqyypw5MS8zUWqqsSLh+6eeB5RU+On5h306nHkn1Nn6Iq1TfHv9An4t6fR/pv17EpALKaXZigw=\n")

_AUDIT_READ = openapi.protected("audit:read")
_ERRORS = {"400": openapi.problem(), "401": openapi.problem(), "403": openapi.problem()}


PATHS: dict[str, Any] = {
    "/v1/audit/entries": {"get": {
        "summary": "Audit entries in log order, filtered, cursor-paged", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(EntriesQuery),
        "responses": {"200": openapi.json_response("a page of entries", AuditEntriesPage, {
            "decision": openapi.example("?action=decision.allowed: one allowed decision", {"entries": [{
                "shard": "2026-11", "index": 8, "leaf_hash": "PLbaEhZ0/rqnHz5TfM/jQH9ThWNpAWx67XfcaZ0DmfM=",
                "entry": _ENTRY, "raw": json.dumps(_ENTRY, sort_keys=True, separators=(",", ":")),
            }], "next_cursor": None})}), **_ERRORS}}},
    "/v1/audit/checkpoints/latest": {"get": {
        "summary": "Latest signed checkpoint (C2SP signed note)", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(CheckpointQuery),
        "responses": {"200": openapi.json_response("checkpoint", CheckpointView, {
            "checkpoint": openapi.example("The tree of shard 2026-11 at 8 entries", {
                "shard": "2026-11", "size": 8, "root": _ROOT, "note": _NOTE, "kid": EXAMPLE_KID,
                "created_at": "2026-11-30T21:02:13.205439Z"})}),
                      "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/keys": {"get": {
        "summary": "Signed-note verifier keys (active and retired)", "tags": ["audit"], **_AUDIT_READ,
        "responses": {"200": openapi.json_response("vkeys", VerifierKeys, {
            "one_key": openapi.example("One key", {
                "vkeys": ["consent.example.com/audit+eb455910+ARjw+BPjrltGAKo/kosQx2t8Rk1Rgcrjnp6pBVybu6mX"]})}),
                      **_ERRORS}}},
    "/v1/audit/proofs/inclusion": {"get": {
        "summary": "RFC 9162 inclusion proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(InclusionQuery),
        "responses": {"200": openapi.json_response("proof", InclusionProof, {
            "inclusion": openapi.example("Entry 3 is in the checkpointed tree of 8",
                                         {"shard": "2026-11", "index": 3, "size": 8, "proof": _PROOF})}),
                      "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/proofs/consistency": {"get": {
        "summary": "RFC 9162 consistency proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(ConsistencyQuery),
        "responses": {"200": openapi.json_response("proof", ConsistencyProof, {
            "consistency": openapi.example("The tree of 4 is a prefix of the tree of 8",
                                           {"shard": "2026-11", "old_size": 4, "new_size": 8,
                                            "proof": [_PROOF[2]]})}),
                      "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/export": {"get": {
        "summary": "Signed export bundle (zip) for a time range; the export is itself audited",
        "tags": ["audit"], **openapi.protected("audit:export"),
        "parameters": openapi.query_parameters(ExportQuery),
        "responses": {"200": {"description": "bundle (docs/AUDIT_BUNDLE.md)",
                              "content": {"application/zip": {
                                  "schema": {"type": "string", "contentMediaType": "application/zip"},
                                  "examples": {"november": openapi.example(
                                      "audit-20261101T000000Z-20261201T000000Z.zip",
                                      description="Content-Disposition names the file. Inside: manifest.json; "
                                                  "per shard the entries (JSONL) with their leaf hashes, the "
                                                  "signed checkpoints and proofs; the verifier keys and the "
                                                  "JWKS. Check it offline with "
                                                  "`consent-gateway audit verify BUNDLE`.")}}}},
                      **_ERRORS}}},
}
