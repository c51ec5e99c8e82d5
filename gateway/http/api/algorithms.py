"""The algorithm white list over HTTP: anyone reads it, admins add to it and suspend."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify
from pydantic import Field

from consent.operations import OPERATIONS
from gateway.auditing.trail import Party
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http import openapi
from gateway.http.context import request_journal
from gateway.http.validation import Body, parse_body
from gateway.registry import algorithms as registry

bp = Blueprint("algorithms_api", __name__, url_prefix="/v1")

class AlgorithmBody(Body):
    filing_number: str = Field(min_length=1, max_length=100, description="the regulator's filing number")
    name: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=200)
    product: str = Field(min_length=1, max_length=200)
    operations: list[str] = Field(min_length=1, max_length=len(OPERATIONS),
                                  json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    upstream_url: str = Field(min_length=1, max_length=2000,
                              description="where the gateway forwards edits; never published")


def _admin() -> Party:
    return Party("admin", g.client_id)


@bp.get("/algorithms")
def list_algorithms() -> Response:
    rows = registry.list_algorithms(db.session)
    return jsonify(algorithms=[registry.public_view(row) for row in rows])


@bp.post("/algorithms")
@require("admin")
def register_algorithm() -> tuple[Response, int]:
    body = parse_body(AlgorithmBody)
    spec = registry.AlgorithmSpec(
        filing_number=body.filing_number, name=body.name, provider=body.provider, product=body.product,
        operations=tuple(body.operations), upstream_url=body.upstream_url,
    )
    now = utcnow()
    row = registry.register(db.session, spec, actor=_admin(), journal=request_journal(now), now=now)
    # The admin who registered it may see where it points; the public list never shows it.
    return jsonify({**registry.public_view(row), "upstream_url": row.upstream_url}), 201


@bp.post("/algorithms/<filing_number>/suspend")
@require("admin")
def suspend_algorithm(filing_number: str) -> Response:
    now = utcnow()
    row = registry.suspend(db.session, filing_number, actor=_admin(), journal=request_journal(now), now=now)
    return jsonify(registry.public_view(row))


_ALGORITHM = {
    "type": "object",
    "required": ["filing_number", "name", "provider", "product", "operations", "status"],
    "properties": {
        "filing_number": {"type": "string"},
        "name": {"type": "string"},
        "provider": {"type": "string"},
        "product": {"type": "string"},
        "operations": {"type": "array", "items": {"type": "string", "enum": list(OPERATIONS)}},
        "status": {"type": "string", "enum": ["active", "suspended"]},
    },
}

PATHS: dict[str, Any] = {
    "/v1/algorithms": {
        "get": {
            "summary": "The white list: registered algorithms with filing number, operations and status",
            "tags": ["algorithms"],
            "responses": {"200": openapi.json_response("algorithms", {
                "type": "object", "properties": {"algorithms": {"type": "array", "items": _ALGORITHM}}})},
        },
        "post": {
            "summary": "Register an algorithm (admin); it is active at once",
            "tags": ["algorithms"],
            **openapi.protected("admin"),
            "requestBody": openapi.json_body(AlgorithmBody),
            "responses": {"201": openapi.json_response("registered", _ALGORITHM),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "409": openapi.problem("filing_number_taken"),
                          "422": openapi.problem("invalid_algorithm / validation_failed")},
        },
    },
    "/v1/algorithms/{filing_number}/suspend": {
        "post": {
            "summary": "Suspend an algorithm (admin): no decision names it and no edit reaches it from now on",
            "tags": ["algorithms"],
            **openapi.protected("admin"),
            "parameters": [{"name": "filing_number", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": openapi.json_response("suspended", _ALGORITHM),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("algorithm_not_found")},
        }
    },
}
