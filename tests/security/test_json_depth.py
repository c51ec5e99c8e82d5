"""Deeply nested and oversized JSON: a clear 400 problem on every JSON endpoint, and nothing written."""

from __future__ import annotations

import io
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.http.validation import MAX_DEPTH
from tests.factories import audit_entries, bearer, make_app_client, make_consent, register_algorithm, token_for

NESTED = b"[" * 10_000 + b"]" * 10_000
NESTED_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000
JUST_TOO_DEEP = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
JSON_POSTS = ["/v1/decisions", "/v1/consent-requests", "/v1/consents/verify", "/v1/algorithms",
              "/v1/decisions/dec_x/outcome"]


@pytest.fixture
def token(app: Flask, client: FlaskClient) -> str:
    return token_for(client, make_app_client(app))


@pytest.mark.parametrize("path", JSON_POSTS)
@pytest.mark.parametrize("body", [NESTED, NESTED_OBJECT, JUST_TOO_DEEP], ids=["array", "object", "depth+1"])
def test_deep_nesting_is_a_400_problem_and_changes_nothing(app: Flask, client: FlaskClient, token: str,
                                                           path: str, body: bytes) -> None:
    before = len(audit_entries(app))
    response = client.post(path, data=body, headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] in ("json_too_deep", "malformed_json")
    assert len(audit_entries(app)) == before


def test_nesting_inside_strings_does_not_count(app: Flask, client: FlaskClient, token: str) -> None:
    record = "[" * 5_000 + '"\\\\"' + "{" * 100
    response = client.post("/v1/consents/verify", json={"record": record}, headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["valid"] is False


def test_a_deeply_nested_request_part_of_an_edit_is_refused_before_any_decision(app: Flask,
                                                                                client: FlaskClient,
                                                                                token: str) -> None:
    register_algorithm(app)
    make_consent(app, make_app_client(app).client_id)
    before = len(audit_entries(app))
    response = client.post("/v1/edits", headers=bearer(token), content_type="multipart/form-data",
                           data={"request": (io.BytesIO(NESTED), "request.json", "application/json"),
                                 "source": (io.BytesIO(b"not really an image"), "a.png", "image/png")})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["code"] in ("json_too_deep", "malformed_json")
    assert len(audit_entries(app)) == before


def test_a_body_over_the_limit_is_a_413_problem(app: Flask, client: FlaskClient, token: str) -> None:
    huge = json.dumps({"record": "x" * (2 * 1024 * 1024)})
    response = client.post("/v1/consents/verify", data=huge,
                           headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
