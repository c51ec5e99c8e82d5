"""Examples in /openapi.json: every operation has them, each is valid against its own schema, and the
schemas describe what the API really answers.

Schemas are checked *closed* here: an object that lists its members but says nothing about others is
taken to allow no others, so a misspelt member in an example, or a member a view sends that its model
does not describe, fails. (The document itself leaves them open, so clients ignore members added later.)
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from werkzeug.test import TestResponse

from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.http import MODULES, openapi
from gateway.keys.keyring import key_store
from tests.conftest import ISSUER
from tests.factories import bearer, make_app_client, make_consent, register_algorithm, token_for

SPEC = openapi.build(MODULES, ISSUER)
OPERATIONS = [(method, path, operation) for path, item in SPEC["paths"].items()
              for method, operation in item.items()]
FORMATS = FormatChecker()


def _params() -> list[Any]:
    return [pytest.param(method, path, operation, id=f"{method.upper()} {path}")
            for method, path, operation in OPERATIONS]


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever an object lists members and is silent on others."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def check(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = Draft202012Validator(closed(schema), format_checker=FORMATS)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(instance)]


def _has_examples(holder: dict[str, Any]) -> bool:
    return "example" in holder or bool(holder.get("examples"))


def _example_values(holder: dict[str, Any]) -> dict[str, Any]:
    """The values of a media type's or parameter's examples, by name (descriptions without a value skipped)."""
    values = {name: item["value"] for name, item in holder.get("examples", {}).items() if "value" in item}
    if "example" in holder:
        values["example"] = holder["example"]
    return values


def _success(operation: dict[str, Any]) -> dict[str, Any]:
    statuses = sorted(status for status in operation["responses"] if status.startswith("2"))
    assert statuses, "no success response documented"
    response: dict[str, Any] = operation["responses"][statuses[0]]
    return response


# --- (a) every operation has examples ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "operation"), _params())
def test_every_operation_has_examples(method: str, path: str, operation: dict[str, Any]) -> None:
    success = _success(operation)
    content = success.get("content", {})
    assert content, "the success response documents no content"
    for media_type, media in content.items():
        assert _has_examples(media), f"success response {media_type} has no example"
    body = operation.get("requestBody")
    if body is not None:
        for media_type, media in body["content"].items():
            assert _has_examples(media), f"request body {media_type} has no example"
    for parameter in operation.get("parameters", []):
        if parameter.get("required"):
            assert _has_examples(parameter), f"required parameter {parameter['name']} has no example"


# --- (b) every example is valid against its schema -------------------------------------------------------


def _examples_of(operation: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    found = []
    for parameter in operation.get("parameters", []):
        for name, value in _example_values(parameter).items():
            found.append((f"parameter {parameter['name']} ({name})", parameter["schema"], value))
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        for name, value in _example_values(media).items():
            found.append((f"request {media_type} ({name})", media["schema"], value))
    for status, response in operation["responses"].items():
        for media_type, media in response.get("content", {}).items():
            for name, value in _example_values(media).items():
                found.append((f"{status} {media_type} ({name})", media["schema"], value))
        for header, described in response.get("headers", {}).items():
            for name, value in _example_values(described).items():
                found.append((f"{status} header {header} ({name})", described["schema"], value))
    return found


@pytest.mark.parametrize(("method", "path", "operation"), _params())
def test_every_example_is_valid_against_its_schema(method: str, path: str, operation: dict[str, Any]) -> None:
    failures = {where: errors for where, schema, value in _examples_of(operation)
                if (errors := check(schema, value))}
    assert failures == {}


def test_json_parts_of_multipart_examples_are_valid_against_their_content_schema() -> None:
    checked = 0
    for _method, _path, operation in OPERATIONS:
        media = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if media is None:
            continue
        for part, declared in media["schema"].get("properties", {}).items():
            if declared.get("contentMediaType") != "application/json" or "contentSchema" not in declared:
                continue
            for value in _example_values(media).values():
                assert check(declared["contentSchema"], json.loads(value[part])) == []
                checked += 1
    assert checked, "no multipart example with a JSON part was found"


def test_examples_follow_the_api_conventions() -> None:
    """The decision example carries real digests and says how to compute them."""
    request = SPEC["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    (example,) = request["examples"].values()
    assert "sha256sum photo.jpg" in example["description"]
    for media in example["value"]["media"]:
        assert len(media["sha256"]) == 64
        int(media["sha256"], 16)
    consent_request = SPEC["paths"]["/v1/consent-requests"]["post"]["requestBody"]["content"]["application/json"]
    assert all({"operations", "purpose"} <= set(item["value"]) for item in consent_request["examples"].values())
    assert any("subject" in item["value"] for item in consent_request["examples"].values())


# --- (c) real answers match the documented schema --------------------------------------------------------


def assert_documented(spec: dict[str, Any], method: str, path: str, response: TestResponse) -> Any:
    """The response's JSON is valid against the closed schema documented for its status and media type."""
    documented = spec["paths"][path][method]["responses"].get(str(response.status_code))
    assert documented is not None, f"{method.upper()} {path}: status {response.status_code} is not documented"
    media = documented["content"].get(response.mimetype)
    assert media is not None, f"{method.upper()} {path}: {response.mimetype} is not documented"
    body = response.get_json()
    assert check(media["schema"], body) == [], (method, path, body)
    return body


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").get_json()
    return document


def test_ops_keys_and_oauth_answers_match_the_document(app: Flask, client: FlaskClient,
                                                       spec: dict[str, Any]) -> None:
    assert_documented(spec, "get", "/healthz", client.get("/healthz"))
    assert_documented(spec, "get", "/readyz", client.get("/readyz"))
    assert_documented(spec, "get", "/openapi.json", client.get("/openapi.json"))
    assert_documented(spec, "get", "/.well-known/oauth-authorization-server",
                      client.get("/.well-known/oauth-authorization-server"))
    with app.app_context(), db.unit_of_work() as session:
        key_store().rotate(session, utcnow())  # a retired key has members of its own
    jwks = assert_documented(spec, "get", "/.well-known/jwks.json", client.get("/.well-known/jwks.json"))
    assert [key.get("status") for key in jwks["keys"]] == ["retired", None]

    owner = make_app_client(app, name="Documented", redirect_uris=("https://videos.example.com/done",))
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=owner.basic())
    token = assert_documented(spec, "post", "/oauth/token", response)["access_token"]
    unauthenticated = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert assert_documented(spec, "post", "/oauth/token", unauthenticated)["error"] == "invalid_client"
    assert_documented(spec, "post", "/oauth/token", client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "root"}, headers=owner.basic()))
    active = client.post("/oauth/introspect", data={"token": token}, headers=owner.basic())
    assert assert_documented(spec, "post", "/oauth/introspect", active)["active"] is True
    assert_documented(spec, "get", "/v1/clients/me", client.get("/v1/clients/me", headers=bearer(token)))
    keys = assert_documented(spec, "get", "/v1/keys", client.get("/v1/keys", headers=bearer(token)))
    assert [key["status"] for key in keys["keys"]] == ["retired", "active"]
    assert_documented(spec, "post", "/oauth/revoke",
                      client.post("/oauth/revoke", data={"token": token}, headers=owner.basic()))
    inactive = client.post("/oauth/introspect", data={"token": token}, headers=owner.basic())
    assert assert_documented(spec, "post", "/oauth/introspect", inactive) == {"active": False}


def test_algorithm_and_decision_answers_match_the_document(app: Flask, client: FlaskClient,
                                                           spec: dict[str, Any]) -> None:
    owner = make_app_client(app)
    token = token_for(client, owner)
    filing = register_algorithm(app, "FN-DOC-0001")
    assert_documented(spec, "get", "/v1/algorithms", client.get("/v1/algorithms"))
    registered = client.post("/v1/algorithms", headers=bearer(token), json={
        "filing_number": "FN-DOC-0002", "name": "Voice Studio", "provider": "Acme", "product": "Studio",
        "operations": ["voice_clone"], "upstream_url": "http://127.0.0.1:9/voice"})
    assert assert_documented(spec, "post", "/v1/algorithms", registered)["upstream_url"]
    suspended = client.post("/v1/algorithms/FN-DOC-0002/suspend", headers=bearer(token))
    assert assert_documented(spec, "post", "/v1/algorithms/{filing_number}/suspend", suspended)["status"] == \
        "suspended"

    consent_id = make_consent(app, owner.client_id)
    allowed = client.post("/v1/decisions", headers=bearer(token), json={
        "operation": "face_swap", "algorithm": filing, "consents": [consent_id],
        "media": [{"role": "source", "sha256": hashlib.sha256(b"photo.jpg").hexdigest()}]})
    assert allowed.status_code == 201, allowed.get_json()
    decision = assert_documented(spec, "post", "/v1/decisions", allowed)
    outcome = client.post(f"/v1/decisions/{decision['decision_id']}/outcome", headers=bearer(token),
                          json={"outcome": "completed", "output_sha256": hashlib.sha256(b"out").hexdigest()})
    assert_documented(spec, "post", "/v1/decisions/{decision_id}/outcome", outcome)


def test_consent_answers_match_the_document(app: Flask, client: FlaskClient, spec: dict[str, Any]) -> None:
    owner = make_app_client(app)
    token = token_for(client, owner)
    register_algorithm(app, "FN-DOC-0001")
    created = client.post("/v1/consent-requests", headers=bearer(token), json={
        "subject": {"reference": "user-42", "contact": "alice@example.com"}, "operations": ["face_swap"],
        "purpose": "Put your face into the birthday video", "algorithms": ["FN-DOC-0001"], "max_uses": 3})
    request_id = assert_documented(spec, "post", "/v1/consent-requests", created)["id"]
    minimal = client.post("/v1/consent-requests", headers=bearer(token),
                          json={"operations": ["voice_clone"], "purpose": "Read the bedtime story in your voice"})
    assert assert_documented(spec, "post", "/v1/consent-requests", minimal)["subject"]["id"] is None
    assert_documented(spec, "get", "/v1/consent-requests/{request_id}",
                      client.get(f"/v1/consent-requests/{request_id}", headers=bearer(token)))

    consent_id = make_consent(app, owner.client_id, max_uses=5)
    assert_documented(spec, "get", "/v1/consents", client.get("/v1/consents", headers=bearer(token)))
    consent = assert_documented(spec, "get", "/v1/consents/{consent_id}",
                                client.get(f"/v1/consents/{consent_id}", headers=bearer(token)))
    verified = client.post("/v1/consents/verify", json={"record": consent["record"]})
    assert assert_documented(spec, "post", "/v1/consents/verify", verified)["valid"] is True
    altered = client.post("/v1/consents/verify", json={"record": consent["record"][:-4] + "AAAA"})
    assert assert_documented(spec, "post", "/v1/consents/verify", altered)["valid"] is False
    revoked = assert_documented(spec, "post", "/v1/consents/{consent_id}/revoke", client.post(
        f"/v1/consents/{consent_id}/revoke", headers=bearer(token), json={"reason": "asked by email"}))
    revocation = client.post("/v1/consents/verify", json={"record": revoked["revocation"]})
    assert assert_documented(spec, "post", "/v1/consents/verify", revocation)["type"] == "revocation"


def test_audit_answers_match_the_document(app: Flask, client: FlaskClient, spec: dict[str, Any]) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 2
    auditor = make_app_client(app)
    token = token_for(client, auditor)
    for name in ("One", "Two", "Three"):
        make_app_client(app, name=name)
    entries = assert_documented(spec, "get", "/v1/audit/entries",
                                client.get("/v1/audit/entries?limit=2", headers=bearer(token)))
    assert entries["next_cursor"] is not None
    checkpoint = assert_documented(spec, "get", "/v1/audit/checkpoints/latest",
                                   client.get("/v1/audit/checkpoints/latest", headers=bearer(token)))
    shard, size = checkpoint["shard"], checkpoint["size"]
    assert_documented(spec, "get", "/v1/audit/keys", client.get("/v1/audit/keys", headers=bearer(token)))
    assert_documented(spec, "get", "/v1/audit/proofs/inclusion", client.get(
        f"/v1/audit/proofs/inclusion?shard={shard}&index=1&size={size}", headers=bearer(token)))
    assert_documented(spec, "get", "/v1/audit/proofs/consistency", client.get(
        f"/v1/audit/proofs/consistency?shard={shard}&old_size=1&new_size={size}", headers=bearer(token)))
