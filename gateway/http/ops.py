"""Liveness, readiness, metrics and the API description."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template
from sqlalchemy import text

from gateway.core.db import db
from gateway.core.observability import metrics_response
from gateway.http import openapi
from gateway.keys.keyring import signer
from gateway.keys.store import KeyStoreError

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the body
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if checks["database"] == "ok":
        try:
            with db.unit_of_work() as session:
                signer(session)
            checks["signing_key"] = "ok"
        except KeyStoreError as exc:
            checks["signing_key"] = f"unavailable: {exc}"
    else:
        checks["signing_key"] = "unknown: database unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), 200 if ready else 503


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


_TEXT = {"text/plain": {"schema": {"type": "string"}}}

PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "Liveness", "tags": ["ops"],
                         "responses": {"200": openapi.json_response("alive")}}},
    "/readyz": {"get": {"summary": "Readiness: database reachable and signing key loaded", "tags": ["ops"],
                        "responses": {"200": openapi.json_response("ready"),
                                      "503": openapi.json_response("not ready")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["ops"],
                         "responses": {"200": {"description": "text exposition format", "content": _TEXT}}}},
    "/openapi.json": {"get": {"summary": "This document", "tags": ["ops"],
                              "responses": {"200": openapi.json_response("OpenAPI 3.1")}}},
    "/docs": {"get": {"summary": "Human-readable API reference", "tags": ["ops"],
                      "responses": {"200": {"description": "HTML",
                                            "content": {"text/html": {"schema": {"type": "string"}}}}}}},
}
