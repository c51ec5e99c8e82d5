"""Time limits, with the clock frozen at the HTTP edge: requests, consents, codes, attempts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time

from gateway.cli import main
from tests.factories import (
    PortalVisitor,
    audit_entries,
    bearer,
    create_consent_request,
    last_code,
    token_for,
)
from tests.gateway.consents.conftest import REDIRECT_URI, Caller

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_request_expires_after_24_hours(app: Flask, client: FlaskClient, caller: Caller,
                                          visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        token = token_for(client, caller.app)
        created = create_consent_request(client, token)
        assert created["expires_at"] == "2026-03-02T09:00:00Z"
        frozen.tick(timedelta(hours=24) - timedelta(seconds=1))
        token = token_for(client, caller.app)
        assert client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
            "status"] == "pending"
        assert visitor.client.get(f"/consent/{created['id']}").status_code == 200
        frozen.tick(timedelta(seconds=1))
        for _ in range(2):
            body = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()
            assert body["status"] == "expired"
        page = visitor.client.get(f"/consent/{created['id']}")
        assert page.status_code == 410
        assert "has expired" in page.get_data(as_text=True)
        assert 'id="back-to-app"' not in page.get_data(as_text=True)  # no redirect_uri: nowhere to go back to
    # Expiry is written once, however many readers notice it.
    assert len(audit_entries(app, "consent_request.expired")) == 1


def test_a_consent_expires_after_its_duration(app: Flask, client: FlaskClient, caller: Caller,
                                              visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        token = token_for(client, caller.app)
        created = create_consent_request(client, token, duration_days=2)
        visitor.grant(created["id"], ["face_swap"])
        consent_id = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
            "consent_id"]
        frozen.tick(timedelta(days=2) - timedelta(seconds=1))
        token = token_for(client, caller.app)
        assert client.get(f"/v1/consents/{consent_id}", headers=bearer(token)).get_json()["status"] == "active"
        frozen.tick(timedelta(seconds=1))
        token = token_for(client, caller.app)
        consent = client.get(f"/v1/consents/{consent_id}", headers=bearer(token)).get_json()
        assert consent["status"] == "expired"
        assert consent["ended_at"] == consent["expires_at"] == "2026-03-03T09:00:00Z"
        listed = client.get("/v1/consents?status=expired", headers=bearer(token)).get_json()["consents"]
        assert [c["id"] for c in listed] == [consent_id]
        refused = client.post(f"/v1/consents/{consent_id}/revoke", json={}, headers=bearer(token))
        assert refused.status_code == 409
        assert refused.get_json()["current_status"] == "expired"
        verified = client.post("/v1/consents/verify", json={"record": consent["record"]}).get_json()
        assert verified["valid"] is True
        assert verified["status"] == "expired"
    assert len(audit_entries(app, "consent.expired")) == 1


def test_the_sweep_command_ends_what_is_overdue(app: Flask, client: FlaskClient, caller: Caller,
                                                visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        token = token_for(client, caller.app)
        granted = create_consent_request(client, token, duration_days=1)
        visitor.grant(granted["id"], ["face_swap"])
        create_consent_request(client, token)  # left pending
        frozen.tick(timedelta(days=2))
        runner = app.test_cli_runner()
        # As `consent-gateway consents sweep` runs it.
        first = runner.invoke(main, ["consents", "sweep", "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.output) == {"consents_ended": 1, "requests_expired": 1, "templates_deleted": 0}
        second = runner.invoke(main, ["consents", "sweep", "--json"])
        assert json.loads(second.output) == {"consents_ended": 0, "requests_expired": 0, "templates_deleted": 0}
    assert len(audit_entries(app, "consent.expired")) == 1
    assert len(audit_entries(app, "consent_request.expired")) == 1


def test_a_code_expires_after_10_minutes(app: Flask, client: FlaskClient, caller: Caller,
                                         visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        created = create_consent_request(client, token_for(client, caller.app))
        assert visitor.send_code(created["id"]).status_code == 303
        code = last_code(app)
        frozen.tick(timedelta(minutes=10))
        response = visitor.verify(created["id"], code)
        assert response.status_code == 400
        assert "expired" in response.get_data(as_text=True)
    failed = audit_entries(app, "code.failed")
    assert [e["reason"] for e in failed] == ["code_expired"]


def test_a_code_still_works_just_before_10_minutes(app: Flask, client: FlaskClient, caller: Caller,
                                                   visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        created = create_consent_request(client, token_for(client, caller.app))
        assert visitor.send_code(created["id"]).status_code == 303
        frozen.tick(timedelta(minutes=10) - timedelta(seconds=1))
        assert visitor.verify(created["id"], last_code(app)).status_code == 303


def test_the_sixth_attempt_is_refused_even_with_the_right_code(
    app: Flask, client: FlaskClient, caller: Caller, visitor: PortalVisitor
) -> None:
    with freeze_time(START):
        created = create_consent_request(client, token_for(client, caller.app))
        assert visitor.send_code(created["id"]).status_code == 303
        code = last_code(app)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for left in (4, 3, 2, 1, 0):
            response = visitor.verify(created["id"], wrong)
            assert response.status_code == 400
            said = {4: "4 attempts left", 3: "3 attempts left", 2: "2 attempts left", 1: "1 attempt left",
                    0: "that was the last try"}[left]
            assert said in response.get_data(as_text=True)
        sixth = visitor.verify(created["id"], code)
        assert sixth.status_code == 400
        assert "Too many wrong codes" in sixth.get_data(as_text=True)
        # The screen still asks for a code: no notice without proof of the contact.
        assert 'name="notice_sha256"' not in visitor.page(f"/consent/{created['id']}")
    reasons = [e["reason"] for e in audit_entries(app, "code.failed")]
    assert reasons == ["code_invalid"] * 5 + ["code_attempts_exhausted"]
    assert audit_entries(app, "code.verified") == []


def test_a_consent_ends_at_the_exact_second_its_signed_record_states(client: FlaskClient, caller: Caller,
                                                                      visitor: PortalVisitor) -> None:
    # Granted 0.9 s into a second: the record's exp is floored to the second, and so is the stored expiry.
    granted_at = START + timedelta(milliseconds=900)
    with freeze_time(granted_at) as frozen:
        token = token_for(client, caller.app)
        created = create_consent_request(client, token, duration_days=1)
        visitor.grant(created["id"], ["face_swap"])
        consent_id = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
            "consent_id"]
        body = client.get(f"/v1/consents/{consent_id}", headers=bearer(token)).get_json()
        claims = json.loads(_b64url(body["record"].split(".")[1]))
        assert claims["exp"] == int(START.timestamp()) + 86400
        assert body["expires_at"] == "2026-03-02T09:00:00Z"
        # Half a second after the exp the record states, the consent is over (it was not before the fix).
        frozen.move_to(START + timedelta(days=1, milliseconds=500))
        token = token_for(client, caller.app)
        assert client.get(f"/v1/consents/{consent_id}", headers=bearer(token)).get_json()["status"] == "expired"


def _b64url(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_an_expired_request_leads_back_to_the_app_that_can_send_a_new_one(
    client: FlaskClient, caller: Caller, visitor: PortalVisitor
) -> None:
    with freeze_time(START) as frozen:
        created = create_consent_request(client, caller.token, redirect_uri=REDIRECT_URI)
        frozen.tick(timedelta(hours=25))
        page = visitor.client.get(f"/consent/{created['id']}").get_data(as_text=True)
    assert "has expired" in page
    assert f'id="back-to-app" href="{REDIRECT_URI}&amp;request_id={created["id"]}&amp;status=expired"' in page

