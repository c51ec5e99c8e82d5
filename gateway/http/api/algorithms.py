"""The algorithm white list over HTTP: anyone reads it, admins add to it and suspend."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, g, jsonify
from pydantic import Field

from consent.operations import OPERATIONS
from gateway.auditing.trail import Party
from gateway.auth.oauth import require
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http import openapi
from gateway.http.context import request_journal
from gateway.http.schemas import EXAMPLE_FILING_NUMBER, View
from gateway.http.validation import Body, FilingNumber, ShortText, parse_body
from gateway.registry import algorithms as registry

bp = Blueprint("algorithms_api", __name__, url_prefix="/v1")

class AlgorithmBody(Body):
    filing_number: FilingNumber = Field(description="the regulator's filing number (no whitespace or '/')")
    name: ShortText = Field(description="shown to people on the notice")
    provider: ShortText
    product: ShortText
    operations: list[str] = Field(min_length=1, max_length=len(OPERATIONS),
                                  json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    # Checked by the registry (422 invalid_algorithm); stated here so that clients know the rule.
    upstream_url: str = Field(min_length=1, max_length=2000,
                              json_schema_extra={"pattern": f"^{registry.UPSTREAM_URL.pattern}$"},
                              description="absolute http(s) URL where the gateway forwards edits; never published")


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


# --- OpenAPI ------------------------------------------------------------------------------------


class AlgorithmView(View):
    """A registered algorithm as anyone may read it (never where it runs)."""

    filing_number: str = Field(description="the regulator's filing number; decisions and edits name it")
    name: str
    provider: str
    product: str
    operations: list[str] = Field(description="what it may be used for",
                                  json_schema_extra={"items": {"enum": list(OPERATIONS)}})
    status: Literal["active", "suspended"] = Field(description="a suspended algorithm is refused everywhere")


class AlgorithmList(View):
    """The white list."""

    algorithms: list[AlgorithmView]


class RegisteredAlgorithm(AlgorithmView):
    """A new registration, shown to the admin who made it with the upstream it forwards to."""

    upstream_url: str = Field(description="where the gateway forwards edits; never in the public list")


_PUBLIC = {"filing_number": EXAMPLE_FILING_NUMBER, "name": "FaceSwap Studio", "provider": "Acme Vision Ltd.",
           "product": "Acme Video Editor", "operations": ["face_swap", "face_attribute_edit"], "status": "active"}
_UPSTREAM = "https://edit.acme.example/v1/swap"

PATHS: dict[str, Any] = {
    "/v1/algorithms": {
        "get": {
            "summary": "The white list: registered algorithms with filing number, operations and status",
            "tags": ["algorithms"],
            "responses": {"200": openapi.json_response("algorithms", AlgorithmList, {
                "one": openapi.example("One active algorithm", {"algorithms": [_PUBLIC]})})},
        },
        "post": {
            "summary": "Register an algorithm (admin); it is active at once",
            "tags": ["algorithms"],
            **openapi.protected("admin"),
            "requestBody": openapi.json_body(AlgorithmBody, {"register": openapi.example(
                "Register a face-swap algorithm under its filing number",
                {**{k: v for k, v in _PUBLIC.items() if k != "status"}, "upstream_url": _UPSTREAM})}),
            "responses": {"201": openapi.json_response("registered", RegisteredAlgorithm, {
                              "registered": openapi.example("Registered and active",
                                                            {**_PUBLIC, "upstream_url": _UPSTREAM})}),
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
            "parameters": [openapi.path_parameter("filing_number", EXAMPLE_FILING_NUMBER)],
            "responses": {"200": openapi.json_response("suspended", AlgorithmView, {
                              "suspended": openapi.example("Suspended", {**_PUBLIC, "status": "suspended"})}),
                          "401": openapi.problem(), "403": openapi.problem(),
                          "404": openapi.problem("algorithm_not_found")},
        }
    },
}
