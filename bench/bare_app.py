"""The yardstick: bare Flask JSON endpoints, served exactly like the gateway (see _harness.wsgi_server).

Each answers a request of the same shape as the gateway's endpoint of the same path, doing no work.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/v1/decisions")
def decide() -> tuple[Response, int]:
    body = request.get_json()
    return jsonify(allowed=True, operation=body.get("operation"), consents=body.get("consents")), 201


@app.get("/v1/consents/<consent_id>")
def consent(consent_id: str) -> Response:
    return jsonify(id=consent_id, status="active")


@app.post("/v1/consent-requests")
def consent_request() -> tuple[Response, int]:
    body = request.get_json()
    return jsonify(status="pending", operations=body.get("operations")), 201


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")
