"""POST/GET /v1/consent-requests: validation, idempotency, redirect URIs, and one app's view only."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from consent.models import ConsentRequest, Subject
from gateway.core.db import db
from tests.factories import (
    audit_entries,
    bearer,
    create_consent_request,
    make_app_client,
    register_algorithm,
    token_for,
)
from tests.gateway.consents.conftest import REDIRECT_URI, Caller


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_another_apps_request_is_not_found_like_an_unknown_one(
    client: FlaskClient, caller: Caller, other_caller: Caller
) -> None:
    created = create_consent_request(client, caller.token)
    mine = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token))
    assert mine.status_code == 200
    theirs = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(other_caller.token))
    unknown = client.get("/v1/consent-requests/creq_doesnotexist", headers=bearer(other_caller.token))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.get_json()["code"] == unknown.get_json()["code"] == "consent_request_not_found"


def test_idempotency_key_returns_the_same_request(app: Flask, client: FlaskClient, caller: Caller,
                                                  other_caller: Caller) -> None:
    key = {"Idempotency-Key": "order-7781-consent"}
    first = client.post("/v1/consent-requests", headers={**bearer(caller.token), **key},
                        json={"operations": ["face_swap"], "purpose": "video", "subject": {"contact": "a@b.example"}})
    assert first.status_code == 201
    again = client.post("/v1/consent-requests", headers={**bearer(caller.token), **key},
                        json={"subject": {"contact": "A@B.example"}, "purpose": "video", "operations": ["face_swap"]})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert _count(app, ConsentRequest) == 1
    assert len(audit_entries(app, "consent_request.created")) == 1

    changed = client.post("/v1/consent-requests", headers={**bearer(caller.token), **key},
                          json={"operations": ["face_swap"], "purpose": "another video",
                                "subject": {"contact": "a@b.example"}})
    assert changed.status_code == 409
    assert changed.mimetype == "application/problem+json"
    assert changed.get_json()["code"] == "idempotency_key_reused"

    # Keys are per app: another app's identical key is its own request.
    other = client.post("/v1/consent-requests", headers={**bearer(other_caller.token), **key},
                        json={"operations": ["face_swap"], "purpose": "video", "subject": {"contact": "a@b.example"}})
    assert other.status_code == 201
    assert other.get_json()["id"] != first.get_json()["id"]


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "naïve"])
def test_malformed_idempotency_key(client: FlaskClient, caller: Caller, key: str) -> None:
    response = client.post("/v1/consent-requests", headers={**bearer(caller.token), "Idempotency-Key": key},
                           json={"operations": ["face_swap"], "purpose": "video"})
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_idempotency_key"


BAD_REQUESTS = [
    pytest.param({"operations": ["face_swap", "mind_reading"]}, 422, "unknown_operation", id="unknown-operation"),
    pytest.param({"operations": ["face_swap", "face_swap"]}, 422, "invalid_terms", id="repeated-operation"),
    pytest.param({"operations": []}, 422, "validation_failed", id="no-operation"),
    pytest.param({"purpose": "x" * 2001}, 422, "validation_failed", id="oversized-purpose"),
    pytest.param({"purpose": "   "}, 422, "validation_failed", id="blank-purpose"),
    pytest.param({"duration_days": 0}, 422, "validation_failed", id="duration-too-short"),
    pytest.param({"duration_days": 366}, 422, "validation_failed", id="duration-too-long"),
    pytest.param({"max_uses": 0}, 422, "validation_failed", id="zero-uses"),
    pytest.param({"locale": "fr"}, 422, "validation_failed", id="unknown-locale"),
    pytest.param({"redirect_uri": "https://evil.example/steal"}, 422, "redirect_uri_not_registered",
                 id="foreign-redirect"),
    pytest.param({"redirect_uri": REDIRECT_URI + "&x=1"}, 422, "redirect_uri_not_registered",
                 id="redirect-with-extra-query"),
    pytest.param({"redirect_uri": REDIRECT_URI.upper()}, 422, "redirect_uri_not_registered",
                 id="redirect-other-case"),
    pytest.param({"algorithms": ["FN-NOT-REGISTERED"]}, 422, "algorithm_not_available", id="unregistered-algorithm"),
    pytest.param({"subject": {"contact": "not an address"}}, 422, "invalid_contact", id="bad-contact"),
    pytest.param({"subject": {"contact": "13800138000"}}, 422, "invalid_contact", id="phone-without-country"),
    pytest.param({"subject": {"nickname": "al"}}, 422, "unknown_field", id="unknown-subject-field"),
    pytest.param({"supersedes": "cns_doesnotexist"}, 404, "consent_not_found", id="renew-unknown"),
]


@pytest.mark.parametrize(("change", "status", "code"), BAD_REQUESTS)
def test_bad_requests_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, caller: Caller, change: dict[str, Any], status: int, *, code: str
) -> None:
    body: dict[str, Any] = {"operations": ["face_swap"], "purpose": "video", "subject": {"contact": "a@b.example"},
                            **change}
    response = client.post("/v1/consent-requests", json=body, headers=bearer(caller.token))
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    assert _count(app, ConsentRequest) == 0
    assert _count(app, Subject) == 0
    assert audit_entries(app, "consent_request.created") == []


def test_duration_bounds_are_inclusive(client: FlaskClient, caller: Caller) -> None:
    assert create_consent_request(client, caller.token, duration_days=1)["duration_days"] == 1
    assert create_consent_request(client, caller.token, duration_days=365)["duration_days"] == 365
    assert create_consent_request(client, caller.token)["duration_days"] == 30


def test_registered_redirect_uri_is_accepted_exactly(client: FlaskClient, caller: Caller) -> None:
    assert create_consent_request(client, caller.token, redirect_uri=REDIRECT_URI)["redirect_uri"] == REDIRECT_URI


def test_named_algorithms_must_be_registered_active_and_able(app: Flask, client: FlaskClient,
                                                              caller: Caller) -> None:
    register_algorithm(app, "FN-FACE-1", operations=("face_swap",))
    register_algorithm(app, "FN-VOICE-1", operations=("voice_clone",))
    ok = create_consent_request(client, caller.token, algorithms=["FN-FACE-1"])
    assert ok["algorithms"] == ["FN-FACE-1"]
    wrong_kind = create_consent_request(client, caller.token, algorithms=["FN-VOICE-1"], expect=422)
    assert wrong_kind["code"] == "algorithm_not_available"
    admin = make_app_client(app, scope="admin")
    token = token_for(client, admin)
    assert client.post("/v1/algorithms/FN-FACE-1/suspend", headers=bearer(token)).status_code == 200
    suspended = create_consent_request(client, caller.token, algorithms=["FN-FACE-1"], expect=422)
    assert suspended["code"] == "algorithm_not_available"
    assert "suspended" in suspended["detail"]


def test_scopes_are_required(app: Flask, client: FlaskClient) -> None:
    reader = make_app_client(app, scope="consent:read")
    token = token_for(client, reader)
    response = client.post("/v1/consent-requests", json={"operations": ["face_swap"], "purpose": "v"},
                           headers=bearer(token))
    assert response.status_code == 403
    assert response.get_json()["code"] == "insufficient_scope"
    assert client.get("/v1/consents").status_code == 401


def test_one_subject_per_contact_however_it_is_spelled(app: Flask, client: FlaskClient, caller: Caller,
                                                       other_caller: Caller) -> None:
    a = create_consent_request(client, caller.token, contact="Alice@Example.com")
    b = create_consent_request(client, other_caller.token, contact=" alice@example.COM ", reference="u-9")
    assert a["subject"]["id"] == b["subject"]["id"]
    # Each app sees only the reference it gave.
    assert a["subject"]["reference"] == "user-42"
    assert b["subject"]["reference"] == "u-9"
    assert _count(app, Subject) == 1
