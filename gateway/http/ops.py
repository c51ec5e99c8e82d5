"""Liveness, readiness, metrics and the API description."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, current_app, jsonify, render_template
from pydantic import Field

from gateway.core.observability import metrics_response
from gateway.http import openapi
from gateway.http.schemas import EXAMPLE_ISSUER, View
from gateway.keys import readiness

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    state = readiness.check()
    return (jsonify(status="ready" if state.ready else "not_ready", checks=state.checks),
            200 if state.ready else 503)


@bp.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@bp.get("/openapi.json")
def openapi_document() -> Response:
    from gateway.http import MODULES

    return jsonify(openapi.build(MODULES, current_app.config["ISSUER"]))


@bp.get("/docs")
def docs() -> str:
    from gateway.http import MODULES

    spec = openapi.build(MODULES, current_app.config["ISSUER"])
    return render_template("docs.html", spec=spec)


# --- OpenAPI ------------------------------------------------------------------------------------


class Health(View):
    """The process answers."""

    status: Literal["ok"]


class ReadinessChecks(View):
    database: str = Field(description='"ok", or "unavailable: <error class>"')
    signing_key: str = Field(description='"ok", "unavailable: <why>", or "unknown: database unavailable"')


class Readiness(View):
    """Whether this process can serve: every check "ok"."""

    status: Literal["ready", "not_ready"]
    checks: ReadinessChecks


class OpenAPIDocument(View):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    openapi: str = Field(pattern=r"^3\.1\.\d+$")
    info: dict[str, Any]
    servers: list[dict[str, Any]]
    paths: dict[str, Any]
    components: dict[str, Any]


_METRICS = """\
# HELP consent_gateway_requests_total HTTP requests
# TYPE consent_gateway_requests_total counter
consent_gateway_requests_total{endpoint="/v1/decisions",method="POST",status="201"} 1842.0
consent_gateway_requests_total{endpoint="/v1/decisions",method="POST",status="403"} 57.0
# HELP consent_gateway_request_seconds HTTP request latency
# TYPE consent_gateway_request_seconds histogram
consent_gateway_request_seconds_bucket{endpoint="/v1/decisions",method="POST",le="0.025"} 1790.0
"""
_DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "Consent Gateway", "version": "1"},
    "servers": [{"url": EXAMPLE_ISSUER}],
    "paths": {"/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}}},
    "components": {},
}

PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "Liveness", "tags": ["ops"],
                         "responses": {"200": openapi.json_response("alive", Health, {
                             "ok": openapi.example("Alive", {"status": "ok"})})}}},
    "/readyz": {"get": {"summary": "Readiness: database reachable and signing key loaded", "tags": ["ops"],
                        "responses": {
                            "200": openapi.json_response("ready", Readiness, {"ready": openapi.example(
                                "Ready", {"status": "ready", "checks": {"database": "ok", "signing_key": "ok"}})}),
                            "503": openapi.json_response("not ready", Readiness, {"no_database": openapi.example(
                                "The database cannot be reached", {"status": "not_ready", "checks": {
                                    "database": "unavailable: OperationalError",
                                    "signing_key": "unknown: database unavailable"}})})}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["ops"],
                         "responses": {"200": {"description": "text exposition format", "content": {
                             "text/plain": openapi.media({"type": "string"}, {
                                 "excerpt": openapi.example("An excerpt", _METRICS)})}}}}},
    "/openapi.json": {"get": {"summary": "This document", "tags": ["ops"],
                              "responses": {"200": openapi.json_response("OpenAPI 3.1", OpenAPIDocument, {
                                  "abridged": openapi.example("Abridged to one path", _DOCUMENT)})}}},
    "/docs": {"get": {"summary": "Human-readable API reference", "tags": ["ops"],
                      "responses": {"200": {"description": "HTML", "content": {
                          "text/html": openapi.media({"type": "string"}, {"start": openapi.example(
                              "The start of the page",
                              "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                              "<title>Consent Gateway \u2014 API reference</title>")})}}}}},
}
