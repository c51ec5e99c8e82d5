"""Who may do what: scopes, one app against another, one subject against another, portal sessions.

Already covered elsewhere and not repeated here: a token asking for scopes its app lacks
(tests/gateway/auth/test_oauth.py), the modality scope of decisions and edits (tests/enforcement), another
app's request, consent or decision id (tests/gateway/consents/test_requests_api.py, test_me.py,
tests/gateway/decisions/test_decisions.py), another subject's consent on /me (test_me.py), forged and
foreign CSRF tokens on the consent screen (tests/gateway/consents/test_portal.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.auth.oauth import SCOPES
from gateway.http import MODULES, openapi
from tests.conftest import ISSUER, SESSION_COOKIE
from tests.factories import (
    ALL_SCOPES,
    PortalVisitor,
    audit_entries,
    bearer,
    consent_row,
    create_consent_request,
    make_app_client,
    make_consent,
    register_algorithm,
    token_for,
)

FILING = "FN-ACCESS-0001"
SPEC = openapi.build(MODULES, ISSUER)
SCOPED = [(method.upper(), path, op["security"]) for path, item in SPEC["paths"].items()
          for method, op in item.items() if any(req.get("oauth2") for req in op.get("security", []))]


def _decision_body(consent_id: str) -> dict[str, Any]:
    return {"operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
            "media": [{"role": "source", "sha256": hashlib.sha256(b"x").hexdigest()}]}


@pytest.mark.parametrize(("method", "path", "security"), SCOPED, ids=[f"{m} {p}" for m, p, _ in SCOPED])
def test_a_token_without_the_named_scope_is_refused_everywhere(
    app: Flask, client: FlaskClient, method: str, path: str, security: list[dict[str, list[str]]]
) -> None:
    """Every scoped operation in the document, with a token holding every *other* scope."""
    needed = {scope for requirement in security for scope in requirement["oauth2"]}
    others = " ".join(s for s in SCOPES if s not in needed)
    owner = make_app_client(app, scope=ALL_SCOPES)
    full, narrow = token_for(client, owner), token_for(client, owner, scope=others)
    register_algorithm(app, FILING, operations=("face_swap", "voice_clone"))
    consent_id = make_consent(app, owner.client_id)
    decision = client.post("/v1/decisions", json=_decision_body(consent_id), headers=bearer(full)).get_json()
    values = {"request_id": "creq_x", "consent_id": consent_id, "decision_id": decision["decision_id"],
              "filing_number": FILING, "shard": "2026-11", "rest": "0/000"}
    url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
    kwargs: dict[str, Any] = {"headers": bearer(narrow)}
    if path == "/v1/decisions":
        kwargs["json"] = _decision_body(consent_id)
    elif path.endswith("/outcome"):
        kwargs["json"] = {"outcome": "completed"}
    elif path == "/v1/edits":
        kwargs["data"] = {"request": '{"operation": "face_swap"}'}
    elif method == "POST":
        kwargs["json"] = {}
    before = len(audit_entries(app))
    response = client.open(url, method=method, **kwargs)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json()["code"] == "insufficient_scope"
    assert len(audit_entries(app)) == before
    assert consent_row(app, consent_id) == ("active", 1)


@pytest.mark.parametrize("asked", ["admin", "ADMIN", "consent:read admin", "consent:read  admin\t",
                                   "consent:read,admin", "consent:read+admin", "consent:*", "*"])
def test_a_token_never_carries_more_than_its_app_holds(app: Flask, client: FlaskClient, asked: str) -> None:
    reader = make_app_client(app, scope="consent:read")
    response = client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": asked},
                           headers=reader.basic())
    if response.status_code == 200:
        granted = set(response.get_json()["scope"].split())
        assert granted <= {"consent:read"}, granted
        assert client.get("/v1/keys", headers=bearer(response.get_json()["access_token"])).status_code == 403
    else:
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_scope"


def test_another_app_learns_nothing_and_uses_nothing_of_my_consents(app: Flask, client: FlaskClient) -> None:
    mine, theirs = make_app_client(app, name="Mine"), make_app_client(app, name="Theirs")
    my_token, their_token = token_for(client, mine), token_for(client, theirs)
    register_algorithm(app, FILING, operations=("face_swap",))
    consent_id = make_consent(app, mine.client_id)
    subject = client.get(f"/v1/consents/{consent_id}", headers=bearer(my_token)).get_json()["subject"]["id"]

    # Listing by my subject's id, or paging from my consent as a cursor, shows them nothing.
    listed = client.get(f"/v1/consents?subject={subject}", headers=bearer(their_token))
    assert listed.status_code == 200
    assert listed.get_json()["consents"] == []
    assert client.get(f"/v1/consents?cursor={consent_id}", headers=bearer(their_token)).status_code == 404
    # Naming my consent in their decision is denied without a use taken or its state revealed.
    denied = client.post("/v1/decisions", json=_decision_body(consent_id), headers=bearer(their_token))
    assert denied.status_code == 403
    assert denied.get_json()["reason"] == "consent_not_for_client"
    assert consent_row(app, consent_id) == ("active", 0)
    # Renewing my consent as theirs is refused too.
    renewal = create_consent_request(client, their_token, supersedes=consent_id, expect=404)
    assert renewal["code"] == "consent_not_found"
    assert consent_row(app, consent_id) == ("active", 0)


def _granted(app: Flask, client: FlaskClient, token: str, visitor: PortalVisitor) -> str:
    created = create_consent_request(client, token)
    visitor.grant(created["id"], ["face_swap"])
    consent_id: str = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
        "consent_id"]
    return consent_id


def test_a_cookie_planted_before_sign_in_gains_nothing(app: Flask, client: FlaskClient) -> None:
    """Session fixation: the attacker's cookie (and the CSRF token they know) stay outside."""
    token = token_for(client, make_app_client(app, name="Birthday Videos"))
    attacker = PortalVisitor(app)
    planted_csrf = attacker.csrf("/me")
    planted_cookie = attacker.client.get_cookie(SESSION_COOKIE)
    assert planted_cookie is not None

    victim = PortalVisitor(app)
    victim.client.set_cookie(SESSION_COOKIE, planted_cookie.value)  # e.g. through a sibling domain
    consent_id = _granted(app, client, token, victim)  # signs the victim in to /me as well
    assert consent_id in victim.page("/me")

    # The attacker's copy of the cookie is still signed out.
    assert consent_id not in attacker.page("/me")
    # The token the attacker knew no longer works in the victim's signed-in session.
    forged = victim.client.post(f"/me/consents/{consent_id}/withdraw", data={"csrf_token": planted_csrf})
    assert forged.status_code == 403
    assert consent_row(app, consent_id)[0] == "active"


def test_signed_in_actions_need_the_csrf_token(app: Flask, client: FlaskClient) -> None:
    token = token_for(client, make_app_client(app, name="Birthday Videos"))
    visitor = PortalVisitor(app)
    consent_id = _granted(app, client, token, visitor)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        response = visitor.client.post(f"/me/consents/{consent_id}/withdraw", data=data)
        assert response.status_code == 403
        assert visitor.client.post("/me/logout", data=data).status_code == 403
    assert consent_row(app, consent_id)[0] == "active"
    assert consent_id in visitor.page("/me")  # still signed in: the forged logout did nothing
