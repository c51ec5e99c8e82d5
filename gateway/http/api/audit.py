"""Auditor access: entries, signed checkpoints, RFC 9162 proofs, verifier keys and the export bundle."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, stream_with_context
from pydantic import Field

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
from gateway.http.validation import Query, Timestamp, parse_query

bp = Blueprint("audit_api", __name__, url_prefix="/v1/audit")

MAX_PAGE = 500
EXPORT_MAX_DAYS = 400
_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_SHARD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"



class EntriesQuery(Query):
    since: Timestamp | None = Field(None, description="RFC 3339, inclusive")
    until: Timestamp | None = Field(None, description="RFC 3339, exclusive")
    action: str | None = Field(None, pattern=_ID, description="e.g. decision.denied")
    subject: str | None = Field(None, pattern=_ID, description="sub_… id")
    client_id: str | None = Field(None, pattern=_ID, description="the app")
    consent_id: str | None = Field(None, pattern=_ID, description="cns_… id")
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


class CheckpointQuery(Query):
    shard: str | None = Field(None, pattern=_SHARD, description="YYYY-MM; default: the open shard")


class InclusionQuery(Query):
    shard: str = Field(pattern=_SHARD, description="YYYY-MM")
    index: int = Field(ge=0, le=2**62, description="leaf index")
    size: int = Field(ge=1, le=2**62, description="tree size of a checkpoint")


class ConsistencyQuery(Query):
    shard: str = Field(pattern=_SHARD, description="YYYY-MM")
    old_size: int = Field(ge=1, le=2**62, description="older tree size")
    new_size: int = Field(ge=1, le=2**62, description="newer tree size")


class ExportQuery(Query):
    since: Timestamp | None = Field(None, description="RFC 3339 (default: 31 days before until)")
    until: Timestamp | None = Field(None, description="RFC 3339, exclusive (default: now)")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@bp.get("/entries")
@require("audit:read")
def entries() -> Response:
    query = parse_query(EntriesQuery)
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
                   note=checkpoint.note, kid=checkpoint.kid, created_at=format_time(checkpoint.created_at))


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
    span = ExportRange.resolve(query.since, query.until, now, max_span=timedelta(days=EXPORT_MAX_DAYS))
    spool = export(current_app._get_current_object(), db.session, span, now,  # type: ignore[attr-defined]
                   party=Party("auditor", g.client_id), request_id=g.get("request_id"), client_id=g.client_id)
    name = f"audit-{span.since:%Y%m%dT%H%M%SZ}-{span.until:%Y%m%dT%H%M%SZ}.zip"

    def stream() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(256 * 1024):
                yield chunk

    return Response(stream_with_context(stream()), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


_AUDIT_READ = openapi.protected("audit:read")
_ERRORS = {"400": openapi.problem(), "401": openapi.problem(), "403": openapi.problem()}


PATHS: dict[str, Any] = {
    "/v1/audit/entries": {"get": {
        "summary": "Audit entries in log order, filtered, cursor-paged", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(EntriesQuery),
        "responses": {"200": openapi.json_response("a page of entries"), **_ERRORS}}},
    "/v1/audit/checkpoints/latest": {"get": {
        "summary": "Latest signed checkpoint (C2SP signed note)", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(CheckpointQuery),
        "responses": {"200": openapi.json_response("checkpoint"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/keys": {"get": {
        "summary": "Signed-note verifier keys (active and retired)", "tags": ["audit"], **_AUDIT_READ,
        "responses": {"200": openapi.json_response("vkeys"), **_ERRORS}}},
    "/v1/audit/proofs/inclusion": {"get": {
        "summary": "RFC 9162 inclusion proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(InclusionQuery),
        "responses": {"200": openapi.json_response("proof"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/proofs/consistency": {"get": {
        "summary": "RFC 9162 consistency proof", "tags": ["audit"], **_AUDIT_READ,
        "parameters": openapi.query_parameters(ConsistencyQuery),
        "responses": {"200": openapi.json_response("proof"), "404": openapi.problem(), **_ERRORS}}},
    "/v1/audit/export": {"get": {
        "summary": "Signed export bundle (zip) for a time range; the export is itself audited",
        "tags": ["audit"], **openapi.protected("audit:export"),
        "parameters": openapi.query_parameters(ExportQuery),
        "responses": {"200": {"description": "bundle (docs/AUDIT_BUNDLE.md)",
                              "content": {"application/zip": {"schema": {"type": "string",
                                                                         "contentMediaType": "application/zip"}}}},
                      **_ERRORS}}},
}
