"""The yardstick: a bare Flask JSON endpoint, served exactly like the gateway (see _harness.wsgi_server)."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/v1/decisions")
def decide() -> tuple[Response, int]:
    body = request.get_json()
    return jsonify(allowed=True, operation=body.get("operation"), consents=body.get("consents")), 201


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")
