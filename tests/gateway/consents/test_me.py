"""/me: sign in by code, all my consents across apps, history, receipts, withdrawal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select

from consent.models import OneTimeCode
from gateway import create_app
from gateway.core.db import db
from tests.conftest import SESSION_COOKIE, app_config
from tests.factories import (
    PortalVisitor,
    audit_entries,
    bearer,
    create_consent_request,
    make_app_client,
    outbox_messages,
    register_algorithm,
    token_for,
)
from tests.gateway.consents.conftest import Caller
from tests.gateway.consents.test_flow import pyjwt_verify

MEDIA = [{"role": "source", "sha256": "a" * 64}]


def _grant(client: FlaskClient, caller: Caller, visitor: PortalVisitor, **body: object) -> str:
    created = create_consent_request(client, caller.token, **body)  # type: ignore[arg-type]
    visitor.grant(created["id"], list(body.get("operations", ["face_swap"])))  # type: ignore[call-overload]
    consent_id: str = client.get(f"/v1/consent-requests/{created['id']}",
                                 headers=bearer(caller.token)).get_json()["consent_id"]
    return consent_id


def test_my_consents_history_receipt_and_withdrawal(app: Flask, client: FlaskClient, caller: Caller,
                                                    other_caller: Caller) -> None:
    register_algorithm(app, "FN-1", operations=("face_swap",))
    first = _grant(client, caller, PortalVisitor(app))
    second = _grant(client, other_caller, PortalVisitor(app), operations=["voice_clone"])
    allowed = client.post("/v1/decisions", headers=bearer(caller.token),
                          json={"operation": "face_swap", "algorithm": "FN-1", "consents": [first], "media": MEDIA})
    assert allowed.status_code == 201, allowed.get_data(as_text=True)

    me = PortalVisitor(app)
    me.sign_in()
    listing = me.page("/me")
    assert "Birthday Videos" in listing
    assert "Other App" in listing
    assert first in listing
    assert second in listing

    details = me.page(f"/me/consents/{first}")
    assert "You gave consent" in details
    assert "Edit allowed: Face swap with algorithm FN-1" in details

    receipt = me.client.get(f"/me/consents/{first}/receipt")
    assert receipt.status_code == 200
    assert receipt.headers["Content-Disposition"] == f'attachment; filename="consent-{first}.json"'
    body = json.loads(receipt.get_data(as_text=True))
    assert body["record_claims"] == pyjwt_verify(client, body["record"], "consent+jwt")
    assert body["revocation"] is None
    assert len(audit_entries(app, "receipt.downloaded")) == 1

    confirm = me.page(f"/me/consents/{first}/withdraw")
    assert "Withdraw your consent?" in confirm
    done = me.post(f"/me/consents/{first}/withdraw", {}, f"/me/consents/{first}/withdraw")
    assert done.status_code == 303
    after = me.page(done.headers["Location"])
    assert "Your consent is withdrawn" in after
    assert "Consent withdrawn" in after

    consent = client.get(f"/v1/consents/{first}", headers=bearer(caller.token)).get_json()
    assert consent["status"] == "withdrawn"
    revocation = pyjwt_verify(client, consent["revocation"], "consent-revocation+jwt")
    assert revocation["by"] == "subject"
    assert revocation["consent"] == first
    receipt_after = json.loads(me.client.get(f"/me/consents/{first}/receipt").get_data(as_text=True))
    assert receipt_after["revocation"] == consent["revocation"]
    withdrawn = audit_entries(app, "consent.withdrawn")
    assert len(withdrawn) == 1
    assert withdrawn[0]["actor"] == {"type": "subject", "id": consent["subject"]["id"]}

    # The other app's consent is untouched.
    assert client.get(f"/v1/consents/{second}", headers=bearer(other_caller.token)).get_json()[
        "status"] == "active"


def test_withdrawal_is_immediate_in_every_process(app: Flask, client: FlaskClient, caller: Caller,
                                                  database_url: str, tmp_path: Path) -> None:
    register_algorithm(app, "FN-1", operations=("face_swap",))
    consent_id = _grant(client, caller, PortalVisitor(app))
    # A second gateway process on the same database, as behind a load balancer.
    other_process = create_app(app_config(database_url, tmp_path / "p2"))
    other_client = other_process.test_client()
    me = PortalVisitor(app)
    me.sign_in()
    me.post(f"/me/consents/{consent_id}/withdraw", {}, f"/me/consents/{consent_id}/withdraw")
    token = token_for(other_client, caller.app)
    denied = other_client.post("/v1/decisions", headers=bearer(token), json={
        "operation": "face_swap", "algorithm": "FN-1", "consents": [consent_id], "media": MEDIA})
    assert denied.status_code == 403
    assert denied.get_json()["reason"] == "consent_withdrawn"
    with other_process.app_context():
        db.engine.dispose()


def test_unknown_contact_gets_the_same_answer_and_no_message(app: Flask, visitor: PortalVisitor) -> None:
    response = visitor.post("/me/code", {"contact": "nobody@example.com"}, "/me")
    assert response.status_code == 303
    page = visitor.page("/me")
    assert "If we know this address" in page
    assert outbox_messages(app) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OneTimeCode)) == 0
    refused = visitor.post("/me/verify", {"code": "123456"}, "/me")
    assert refused.status_code == 400


def test_someone_elses_consent_is_not_found(app: Flask, client: FlaskClient, caller: Caller) -> None:
    alices = _grant(client, caller, PortalVisitor(app))
    bob = PortalVisitor(app)
    bobs_request = create_consent_request(client, caller.token, contact="bob@example.com")
    bob.grant(bobs_request["id"], ["face_swap"], contact="bob@example.com")
    for path in (f"/me/consents/{alices}", f"/me/consents/{alices}/receipt", f"/me/consents/{alices}/withdraw"):
        response = bob.client.get(path)
        assert response.status_code == 404, path
    forged = bob.post(f"/me/consents/{alices}/withdraw", {}, "/me")
    assert forged.status_code == 404
    assert client.get(f"/v1/consents/{alices}", headers=bearer(caller.token)).get_json()["status"] == "active"


def test_another_apps_consent_id_is_not_found_over_the_api(app: Flask, client: FlaskClient, caller: Caller,
                                                           other_caller: Caller) -> None:
    consent_id = _grant(client, caller, PortalVisitor(app))
    for response in (
        client.get(f"/v1/consents/{consent_id}", headers=bearer(other_caller.token)),
        client.post(f"/v1/consents/{consent_id}/revoke", json={}, headers=bearer(other_caller.token)),
    ):
        assert response.status_code == 404
        assert response.get_json()["code"] == "consent_not_found"
    assert client.get(f"/v1/consents/{consent_id}", headers=bearer(caller.token)).get_json()["status"] == "active"


def test_signing_in_ends_after_30_minutes_and_on_sign_out(app: Flask, client: FlaskClient) -> None:
    registered = make_app_client(app, name="Birthday Videos")
    me = PortalVisitor(app)
    with freeze_time(datetime(2026, 3, 1, tzinfo=UTC)) as frozen:
        caller = Caller(registered, token_for(client, registered))
        _grant(client, caller, PortalVisitor(app))
        me.sign_in()
        assert "Birthday Videos" in me.page("/me")
        frozen.tick(timedelta(minutes=31))
        assert "Sign in with a one-time code" in me.page("/me")
        me.sign_in()
        assert "Birthday Videos" in me.page("/me")
        assert me.post("/me/logout", {}, "/me").status_code == 303
        assert "Sign in with a one-time code" in me.page("/me")


def test_withdraw_needs_a_signed_in_subject(app: Flask, client: FlaskClient, caller: Caller) -> None:
    consent_id = _grant(client, caller, PortalVisitor(app))
    stranger = PortalVisitor(app)
    assert stranger.client.get(f"/me/consents/{consent_id}").status_code == 303
    response = stranger.post(f"/me/consents/{consent_id}/withdraw", {}, "/me")
    assert response.status_code == 401
    assert client.get(f"/v1/consents/{consent_id}", headers=bearer(caller.token)).get_json()["status"] == "active"


def test_signing_out_ends_every_copy_of_the_session(app: Flask, client: FlaskClient, caller: Caller) -> None:
    consent_id = _grant(client, caller, PortalVisitor(app))
    me = PortalVisitor(app)
    me.sign_in()
    assert consent_id in me.page("/me")
    cookie = me.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    copy = app.test_client()  # the same cookie in another browser (a shared phone, a saved request)
    copy.set_cookie(SESSION_COOKIE, cookie.value)
    assert consent_id in copy.get("/me").get_data(as_text=True)

    assert me.post("/me/logout", {}, "/me").status_code == 303
    for browser in (me.client, copy):
        page = browser.get("/me").get_data(as_text=True)
        assert consent_id not in page
        assert 'name="contact"' in page  # asked to sign in again
        assert browser.get(f"/me/consents/{consent_id}").status_code == 303
    # Signing in again works as before.
    me.sign_in()
    assert consent_id in me.page("/me")


def test_a_signed_in_person_gets_a_page_when_the_database_is_unreachable(
    app: Flask, client: FlaskClient, caller: Caller, tmp_path: Path
) -> None:
    _grant(client, caller, PortalVisitor(app))
    me = PortalVisitor(app)
    me.sign_in()
    cookie = me.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    # Another process of the deployment (same keys) whose database cannot be reached.
    cut_off = create_app(app_config("sqlite:////nonexistent-dir/for/sure/gateway.sqlite3", tmp_path / "p2"))
    browser = cut_off.test_client()
    browser.set_cookie(SESSION_COOKIE, cookie.value)
    response = browser.get("/me")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "<html" in response.get_data(as_text=True)
