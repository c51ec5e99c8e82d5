"""Every JSON endpoint answers bad input with a clear problem+json and changes nothing."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, func, select

from gateway.core.db import db
from tests.factories import bearer, make_app_client, token_for

# Multipart and form endpoints have their own bad-input tests; OAuth answers in RFC 6749 form.
NOT_JSON = re.compile(r"^/(oauth/|consent/|me|v1/edits|v1/labels/)")


def _json_post_routes(app: Flask) -> list[str]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or set()) and not NOT_JSON.match(rule.rule):
            routes.append(re.sub(r"<(?:[a-z_]+:)?[a-z_]+>", "does_not_exist_123", rule.rule))
    return sorted(routes)


def _counts(app: Flask) -> dict[str, int]:
    meta = MetaData()
    with app.app_context():
        meta.reflect(db.engine)
        skip = {"alembic_version", "oauth_tokens", "audit_queue", "rate_counters"}
        return {
            name: db.session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in meta.tables.items()
            if name not in skip
        }


BAD_BODIES = [
    pytest.param({"data": b"{not json", "content_type": "application/json"}, {400}, id="malformed"),
    pytest.param({"data": b"{}", "content_type": "text/plain"}, {415}, id="wrong-content-type"),
    pytest.param({"data": b"[1,2,3]", "content_type": "application/json"}, {422}, id="not-an-object"),
    pytest.param({"json": {"definitely_unknown_member": 1}}, {422}, id="unknown-field"),
    pytest.param({"data": b'{"a":"' + b"x" * (2 * 1024 * 1024) + b'"}', "content_type": "application/json"},
                 {413}, id="oversized"),
    pytest.param({"data": b"\xff\xfe\x00", "content_type": "application/json"}, {400}, id="not-utf8"),
]


@pytest.mark.parametrize(("kwargs", "statuses"), BAD_BODIES)
def test_bad_bodies_get_problems_and_change_nothing(
    app: Flask, client: FlaskClient, kwargs: dict[str, object], statuses: set[int]
) -> None:
    token = token_for(client, make_app_client(app))
    routes = _json_post_routes(app)
    before = _counts(app)
    for route in routes:
        response = client.post(route, headers=bearer(token), **kwargs)  # type: ignore[arg-type]
        # An unknown id in the path may legitimately answer 404 before the body is read.
        assert response.status_code in statuses | {404}, (route, response.status_code, response.data[:300])
        assert response.mimetype == "application/problem+json", route
        body = response.get_json()
        assert body["status"] == response.status_code
        assert body["code"]
        assert body["type"].startswith("https://")
    assert _counts(app) == before


def test_unknown_route_and_method_are_problems(client: FlaskClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["code"] == "not_found"
    wrong_method = client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]


def test_every_response_carries_a_request_id(client: FlaskClient) -> None:
    ok = client.get("/healthz")
    assert ok.headers["X-Request-Id"].startswith("req_")
    problem = client.get("/nope")
    assert problem.get_json()["request_id"] == problem.headers["X-Request-Id"]
    echoed = client.get("/healthz", headers={"X-Request-Id": "abcdef12-trace"})
    assert echoed.headers["X-Request-Id"] == "abcdef12-trace"
    injected = client.get("/healthz", headers={"X-Request-Id": "bad id <script>; x=1"})
    assert injected.headers["X-Request-Id"].startswith("req_")


def test_internal_errors_are_problems_without_details(app: Flask) -> None:
    @app.get("/_boom")
    def _boom() -> str:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/_boom")
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True)


def test_metrics_count_requests(client: FlaskClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'consent_gateway_requests_total{endpoint="/healthz",method="GET",status="200"}' in text
    assert "consent_gateway_request_seconds_bucket" in text
