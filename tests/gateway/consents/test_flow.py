"""The whole consent lifecycle over HTTP with the test client: request, screen, grant, read, revoke."""

from __future__ import annotations

from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import PortalVisitor, audit_entries, bearer, create_consent_request, last_code
from tests.gateway.consents.conftest import Caller


def pyjwt_verify(client: FlaskClient, token: str, typ: str) -> dict[str, Any]:
    """Verify with PyJWT against the published JWKS, as any third party would."""
    jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").get_json())
    header = jwt.get_unverified_header(token)
    assert header["typ"] == typ
    assert header["alg"] == "EdDSA"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=["EdDSA"], options={"verify_aud": False})
    return claims


def test_grant_read_and_revoke(app: Flask, client: FlaskClient, caller: Caller, visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, duration_days=7, max_uses=3,
                                     operations=["face_swap", "voice_clone", "face_reenactment"])
    assert created["status"] == "pending"
    assert created["consent_url"] == f"http://gateway.test/consent/{created['id']}"
    assert created["subject"]["id"].startswith("sub_")
    assert created["subject"]["reference"] == "user-42"

    visitor.grant(created["id"], ["face_swap", "voice_clone"])

    request = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()
    assert request["status"] == "granted"
    consent = client.get(f"/v1/consents/{request['consent_id']}", headers=bearer(caller.token)).get_json()
    assert consent["status"] == "active"
    assert consent["operations"] == ["face_swap", "voice_clone"]
    assert consent["modalities"] == ["face", "voice"]
    assert (consent["max_uses"], consent["uses"]) == (3, 0)
    claims = pyjwt_verify(client, consent["record"], "consent+jwt")
    assert claims["iss"] == "http://gateway.test"
    assert claims["jti"] == consent["id"]
    assert claims["sub"] == created["subject"]["id"]
    assert claims["aud"] == caller.app.client_id
    assert claims["request"] == created["id"]
    assert claims["exp"] - claims["nbf"] == 7 * 86400
    terms = claims["consent"]
    assert terms["operations"] == ["face_swap", "voice_clone"]
    assert terms["max_uses"] == 3
    assert terms["algorithms"] is None
    assert terms["notice"]["locale"] == "en"
    assert len(terms["notice"]["sha256"]) == 64
    assert terms["collection"]["authn"] == "email_otp"

    revoked = client.post(f"/v1/consents/{consent['id']}/revoke", json={"reason": "account closed"},
                          headers=bearer(caller.token))
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    body = revoked.get_json()
    assert body["status"] == "revoked"
    assert body["ended_at"] is not None
    revocation = pyjwt_verify(client, body["revocation"], "consent-revocation+jwt")
    assert revocation["consent"] == consent["id"]
    assert revocation["by"] == "client"
    assert revocation["reason"] == "account closed"
    assert revocation["jti"].startswith("rev_")

    again = client.post(f"/v1/consents/{consent['id']}/revoke", json={}, headers=bearer(caller.token))
    assert again.status_code == 409
    assert again.get_json()["code"] == "consent_not_active"
    assert again.get_json()["current_status"] == "revoked"

    actions = [e["action"] for e in audit_entries(app)]
    for action in ("consent_request.created", "code.sent", "code.verified", "consent.granted", "consent.revoked"):
        assert actions.count(action) == 1, action
    granted = audit_entries(app, "consent.granted")[0]
    assert granted["subject"] == created["subject"]["id"]
    assert granted["detail"]["declined_operations"] == ["face_reenactment"]
    # The audit log names subjects by pseudonym only.
    assert all("alice@example.com" not in str(entry) for entry in audit_entries(app))


def test_withdraw_on_behalf_of_the_subject(client: FlaskClient, caller: Caller, visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.grant(created["id"], ["face_swap"])
    consent_id = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()[
        "consent_id"]
    response = client.post(f"/v1/consents/{consent_id}/revoke", json={"on_behalf_of_subject": True},
                           headers=bearer(caller.token))
    assert response.get_json()["status"] == "withdrawn"
    assert pyjwt_verify(client, response.get_json()["revocation"], "consent-revocation+jwt")["by"] == "subject"


def test_list_consents_pages_and_filters(client: FlaskClient, caller: Caller, other_caller: Caller,
                                         visitor: PortalVisitor) -> None:
    ids = []
    for _ in range(3):
        created = create_consent_request(client, caller.token)
        visitor.grant(created["id"], ["face_swap"])
        ids.append(client.get(f"/v1/consent-requests/{created['id']}",
                              headers=bearer(caller.token)).get_json()["consent_id"])
    client.post(f"/v1/consents/{ids[0]}/revoke", json={}, headers=bearer(caller.token))

    first = client.get("/v1/consents?limit=2", headers=bearer(caller.token)).get_json()
    assert len(first["consents"]) == 2
    second = client.get(f"/v1/consents?limit=2&cursor={first['next_cursor']}",
                        headers=bearer(caller.token)).get_json()
    listed = [c["id"] for c in first["consents"] + second["consents"]]
    assert sorted(listed) == sorted(ids)
    assert len(set(listed)) == 3
    active = client.get("/v1/consents?status=active", headers=bearer(caller.token)).get_json()["consents"]
    assert sorted(c["id"] for c in active) == sorted(ids[1:])
    revoked = client.get("/v1/consents?status=revoked", headers=bearer(caller.token)).get_json()["consents"]
    assert [c["id"] for c in revoked] == [ids[0]]
    # Another app sees none of them, and cannot page from one of them.
    assert client.get("/v1/consents", headers=bearer(other_caller.token)).get_json()["consents"] == []
    assert client.get(f"/v1/consents?cursor={ids[0]}", headers=bearer(other_caller.token)).status_code == 404
    bad = client.get("/v1/consents?status=happy", headers=bearer(caller.token))
    assert bad.status_code == 422


def test_renewal_supersedes_and_ends_the_old_consent(client: FlaskClient, caller: Caller,
                                                     visitor: PortalVisitor) -> None:
    first = create_consent_request(client, caller.token, operations=["face_swap", "voice_clone"])
    visitor.grant(first["id"], ["face_swap", "voice_clone"])
    old_id = client.get(f"/v1/consent-requests/{first['id']}", headers=bearer(caller.token)).get_json()["consent_id"]

    # The app need not know the contact to renew: the code goes to the person who consented.
    renewal = create_consent_request(client, caller.token, contact=None, supersedes=old_id, duration_days=90)
    assert renewal["subject"]["id"] == first["subject"]["id"]
    visitor.grant(renewal["id"], ["face_swap"])
    new_id = client.get(f"/v1/consent-requests/{renewal['id']}", headers=bearer(caller.token)).get_json()[
        "consent_id"]

    new = client.get(f"/v1/consents/{new_id}", headers=bearer(caller.token)).get_json()
    assert new["supersedes"] == old_id
    assert pyjwt_verify(client, new["record"], "consent+jwt")["supersedes"] == old_id
    old = client.get(f"/v1/consents/{old_id}", headers=bearer(caller.token)).get_json()
    assert old["status"] == "withdrawn"
    assert pyjwt_verify(client, old["revocation"], "consent-revocation+jwt")["reason"] == f"superseded by {new_id}"


def test_renewal_of_another_apps_consent_or_for_another_person_is_refused(
    client: FlaskClient, caller: Caller, other_caller: Caller, visitor: PortalVisitor
) -> None:
    first = create_consent_request(client, caller.token)
    visitor.grant(first["id"], ["face_swap"])
    old_id = client.get(f"/v1/consent-requests/{first['id']}", headers=bearer(caller.token)).get_json()["consent_id"]
    stolen = create_consent_request(client, other_caller.token, supersedes=old_id, expect=404)
    assert stolen["code"] == "consent_not_found"
    mismatch = create_consent_request(client, caller.token, supersedes=old_id, contact="bob@example.com",
                                      expect=422)
    assert mismatch["code"] == "subject_mismatch"


def test_contact_entered_on_the_screen_binds_the_subject(app: Flask, client: FlaskClient, caller: Caller,
                                                         visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, contact=None)
    assert created["subject"]["id"] is None
    # Typed with spaces and dashes; normalised to E.164 before it is hashed and sent to.
    assert visitor.send_code(created["id"], "+86 138-0013-8000").status_code == 303
    assert visitor.verify(created["id"], last_code(app, "+8613800138000")).status_code == 303
    done = visitor.decide(created["id"], ["face_swap"])
    assert done.status_code == 200
    assert "Thank you" in done.get_data(as_text=True)
    request = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()
    assert request["status"] == "granted"
    assert request["subject"]["id"].startswith("sub_")
    consent = client.get(f"/v1/consents/{request['consent_id']}", headers=bearer(caller.token)).get_json()
    assert pyjwt_verify(client, consent["record"], "consent+jwt")["consent"]["collection"]["authn"] == "sms_otp"
