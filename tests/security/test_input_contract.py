"""The cases that once slipped through: what the document forbids is refused, and nothing unchecked is stored."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import audit_entries, bearer, make_app_client, make_consent, register_algorithm, token_for

FILING = "FN-CONTRACT-0001"
DIGEST = hashlib.sha256(b"portrait").hexdigest()


@pytest.fixture
def token(app: Flask, client: FlaskClient) -> str:
    register_algorithm(app, FILING)
    return token_for(client, make_app_client(app))


def _decision(consent_id: str, **media: str) -> dict[str, Any]:
    return {"operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
            "media": [{"role": media.get("role", "source"), "sha256": media.get("sha256", DIGEST)}]}


def _allowed(app: Flask, client: FlaskClient, token: str) -> str:
    owner = client.get("/v1/clients/me", headers=bearer(token)).get_json()["client_id"]
    consent_id = make_consent(app, owner)
    response = client.post("/v1/decisions", json=_decision(consent_id), headers=bearer(token))
    assert response.status_code == 201
    decision_id: str = response.get_json()["decision_id"]
    return decision_id


@pytest.mark.parametrize("digest", ["0" * 64 + "x", "0" * 63, "A" * 64, "<script>" + "0" * 5000, "0" * 64 + "\n"])
def test_an_outcome_digest_is_exactly_64_lowercase_hex(app: Flask, client: FlaskClient, token: str,
                                                       digest: str) -> None:
    decision_id = _allowed(app, client, token)
    before = len(audit_entries(app))
    response = client.post(f"/v1/decisions/{decision_id}/outcome", headers=bearer(token),
                           json={"outcome": "completed", "output_sha256": digest})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert len(audit_entries(app)) == before


@pytest.mark.parametrize("media", [{"sha256": "ZZ" + DIGEST + "ZZ"}, {"role": "ZZsourceZZ"}, {"role": "source\n"},
                                   {"role": "r" * 33}])
def test_media_digests_and_roles_are_anchored_before_anything_is_decided(app: Flask, client: FlaskClient,
                                                                          token: str, media: dict[str, str]) -> None:
    before = len(audit_entries(app))
    response = client.post("/v1/decisions", json=_decision("cns_unknown", **media), headers=bearer(token))
    assert response.status_code == 422
    # Refused as input, not decided: no denied decision naming a fake digest in the append-only log.
    assert len(audit_entries(app)) == before


@pytest.mark.parametrize("flag", ["yes", 1, 0.0, "true", None])
def test_the_withdraw_flag_is_a_json_boolean(app: Flask, client: FlaskClient, token: str, flag: Any) -> None:
    owner = client.get("/v1/clients/me", headers=bearer(token)).get_json()["client_id"]
    consent_id = make_consent(app, owner)
    response = client.post(f"/v1/consents/{consent_id}/revoke", headers=bearer(token),
                           json={"on_behalf_of_subject": flag})
    assert response.status_code == 422
    assert client.get(f"/v1/consents/{consent_id}", headers=bearer(token)).get_json()["status"] == "active"


def test_limits_apply_to_the_text_as_sent(client: FlaskClient, token: str) -> None:
    # 65,537 characters, one of them a leading space: over the 65,536 limit, whatever stripping would leave.
    response = client.post("/v1/consents/verify", json={"record": " " + "a" * 65_536}, headers=bearer(token))
    assert response.status_code == 422


@pytest.mark.parametrize("query", ["cursor=" + "c" * 65, "subject=" + "s" * 65, "limit=0", "limit=101",
                                   "status=happy", "surprise=1", "limit=1_0", "limit=%2010", "limit=+5"])
def test_consent_list_parameters_are_checked_as_documented(client: FlaskClient, token: str, query: str) -> None:
    response = client.get(f"/v1/consents?{query}", headers=bearer(token))
    assert response.status_code == 422
    assert "request body" not in response.get_json()["detail"]


@pytest.mark.parametrize("query", ["shard=2026-13", "shard=2026-1", "since=yesterday", "since=2026-01-01T00:00:00",
                                   "limit=501", "limit=0", "limit=1_0", "limit=%201"])
def test_audit_parameters_are_checked_as_documented(client: FlaskClient, token: str, query: str) -> None:
    path = "/v1/audit/checkpoints/latest" if query.startswith("shard") else "/v1/audit/entries"
    response = client.get(f"{path}?{query}", headers=bearer(token))
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_parameter"


def test_an_entries_range_that_holds_no_instant_is_invalid_as_for_an_export(client: FlaskClient, token: str) -> None:
    for since, until in (("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),
                         ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")):
        response = client.get(f"/v1/audit/entries?since={since}&until={until}", headers=bearer(token))
        assert response.status_code == 400
        assert response.get_json()["code"] == "invalid_range"


@pytest.mark.parametrize("key", ["", " ", "é", "k" * 201])
def test_a_bad_idempotency_key_is_refused_and_creates_nothing(client: FlaskClient, token: str, key: str) -> None:
    response = client.post("/v1/consent-requests", headers={**bearer(token), "Idempotency-Key": key},
                           json={"operations": ["face_swap"], "purpose": "video"})
    assert response.status_code == 400
    assert client.get("/v1/consents", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("url", ["/relative/edit", "ftp://upstream.example/", "http://", "https://[0]/edit",
                                 # No host any connection could reach: refused at registration, not at the
                                 # first edit (which would have taken a use for a call that cannot be made).
                                 "http://.../edit", "http://-/edit", "http://a..b/edit", "http://-host.example/",
                                 "http://upstream.example:99999/edit", "http://upstream.example:0/edit",
                                 f"http://{'a' * 64}.example/edit"])
def test_an_upstream_url_is_an_absolute_http_url(client: FlaskClient, app: Flask, url: str) -> None:
    admin = token_for(client, make_app_client(app, scope="admin", name="Admin"))
    response = client.post("/v1/algorithms", headers=bearer(admin), json={
        "filing_number": "FN-URL-1", "name": "n", "provider": "p", "product": "p", "operations": ["face_swap"],
        "upstream_url": url})
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid_algorithm"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_oauth_endpoints_answer_in_rfc_6749_form_even_before_authlib_runs(client: FlaskClient, path: str) -> None:
    response = client.post(path, data={"grant_type": "client_credentials\x00", "token": "x"})
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"


def test_options_on_verify_offers_only_post(client: FlaskClient) -> None:
    response = client.open("/v1/consents/verify", method="OPTIONS")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}
    assert client.get("/v1/consents/verify").status_code == 405
