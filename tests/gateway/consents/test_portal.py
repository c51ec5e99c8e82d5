"""The hosted consent screen and /me with a test client: bad input, CSRF, languages, redirects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from consent.models import Consent, OneTimeCode
from gateway import create_app
from gateway.core.db import db
from tests.conftest import SESSION_COOKIE, app_config, init_keys
from tests.factories import (
    PortalVisitor,
    audit_entries,
    bearer,
    create_consent_request,
    last_code,
    make_app_client,
    outbox_messages,
    register_algorithm,
    token_for,
)
from tests.gateway.consents.conftest import REDIRECT_URI, Caller


def _consents(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Consent)) or 0)


def test_wrong_code_is_refused_and_counted(app: Flask, client: FlaskClient, caller: Caller,
                                           visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    code = last_code(app)
    response = visitor.verify(created["id"], f"{(int(code) + 1) % 1_000_000:06d}")
    assert response.status_code == 400
    assert "4 attempts left" in response.get_data(as_text=True)
    response = visitor.verify(created["id"], "abc")
    assert "3 attempts left" in response.get_data(as_text=True)
    with app.app_context():
        row = db.session.scalars(select(OneTimeCode)).one()
        assert row.attempts == 2
        # Only a keyed hash is stored, never the code.
        assert code not in row.code_hash
    assert len(audit_entries(app, "code.failed")) == 2


def test_a_code_for_another_request_is_refused(app: Flask, client: FlaskClient, caller: Caller,
                                               visitor: PortalVisitor) -> None:
    first = create_consent_request(client, caller.token)
    second = create_consent_request(client, caller.token)
    visitor.send_code(first["id"])
    code_for_first = last_code(app)
    visitor.send_code(second["id"])
    if code_for_first != last_code(app):  # one in a million they coincide, and then it is second's code too
        assert visitor.verify(second["id"], code_for_first).status_code == 400
    # And without having asked for a code on a request at all, no code is accepted there.
    third = create_consent_request(client, caller.token)
    response = visitor.verify(third["id"], code_for_first)
    assert response.status_code == 400
    assert "no valid code" in response.get_data(as_text=True)
    assert {e["reason"] for e in audit_entries(app, "code.failed")} <= {"code_invalid", "code_not_found"}


def test_a_used_code_cannot_be_replayed(app: Flask, client: FlaskClient, caller: Caller,
                                        visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    code = last_code(app)
    # An eavesdropper copies the browser's cookie before the code is entered...
    cookie = visitor.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    assert visitor.verify(created["id"], code).status_code == 303
    # ...and replays cookie and code afterwards.
    attacker = PortalVisitor(app)
    attacker.client.set_cookie(SESSION_COOKIE, cookie.value, domain=cookie.domain)
    replay = attacker.verify(created["id"], code)
    assert replay.status_code == 400
    assert "already used" in replay.get_data(as_text=True)
    assert [e["reason"] for e in audit_entries(app, "code.failed")] == ["code_used"]


def test_a_newer_code_replaces_the_older_one(app: Flask, client: FlaskClient, caller: Caller,
                                             visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    old = last_code(app)
    visitor.send_code(created["id"])
    new = last_code(app)
    if old != new:
        assert visitor.verify(created["id"], old).status_code == 400
    assert visitor.verify(created["id"], new).status_code == 303


@pytest.mark.parametrize("token", ["forged-token", ""])
def test_forged_csrf_token_is_refused_and_changes_nothing(app: Flask, client: FlaskClient, caller: Caller,
                                                          visitor: PortalVisitor, token: str) -> None:
    created = create_consent_request(client, caller.token)
    visitor.page(f"/consent/{created['id']}")  # a real session with a real token exists
    response = visitor.client.post(f"/consent/{created['id']}/code", data={"csrf_token": token})
    assert response.status_code == 403
    assert "not sent from this site" in response.get_data(as_text=True)
    assert outbox_messages(app) == []
    assert audit_entries(app, "code.sent") == []

    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    forged = visitor.client.post(f"/consent/{created['id']}/decision", data={
        "csrf_token": token, "notice_sha256": visitor.field(html, "notice_sha256"), "locale": "en",
        "operations": ["face_swap"], "action": "approve"})
    assert forged.status_code == 403
    assert _consents(app) == 0
    assert client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()[
        "status"] == "pending"


def test_a_csrf_token_from_another_session_is_refused(app: Flask, client: FlaskClient, caller: Caller) -> None:
    created = create_consent_request(client, caller.token)
    attacker, victim = PortalVisitor(app), PortalVisitor(app)
    attackers_token = attacker.csrf(f"/consent/{created['id']}")
    victim.page(f"/consent/{created['id']}")
    response = victim.client.post(f"/consent/{created['id']}/code", data={"csrf_token": attackers_token})
    assert response.status_code == 403


def test_script_in_the_purpose_is_rendered_inert(client: FlaskClient, caller: Caller,
                                                 visitor: PortalVisitor) -> None:
    purpose = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'
    created = create_consent_request(client, caller.token, purpose=purpose)
    visitor.prove(created["id"])
    response = visitor.client.get(f"/consent/{created['id']}")
    html = response.get_data(as_text=True)
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no script may run at all
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_nothing_is_pre_ticked_and_approving_nothing_is_refused(app: Flask, client: FlaskClient,
                                                                caller: Caller, visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, operations=["face_swap", "voice_clone"])
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    boxes = re.findall(r'<input type="checkbox"[^>]*>', html)
    assert len(boxes) == 2
    assert all("checked" not in box for box in boxes)
    response = visitor.decide(created["id"], [])
    assert response.status_code == 422
    assert "Tick at least one operation" in response.get_data(as_text=True)
    assert _consents(app) == 0


def test_an_operation_that_was_not_asked_for_is_refused(app: Flask, client: FlaskClient, caller: Caller,
                                                        visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, operations=["face_swap"])
    visitor.prove(created["id"])
    response = visitor.decide(created["id"], ["face_swap", "voice_clone"])
    assert response.status_code == 422
    assert _consents(app) == 0


def test_a_changed_notice_must_be_read_again(app: Flask, client: FlaskClient, caller: Caller,
                                             visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.prove(created["id"])
    response = visitor.decide(created["id"], ["face_swap"], notice_sha256="0" * 64)
    assert response.status_code == 409
    assert "read it again" in response.get_data(as_text=True)
    assert _consents(app) == 0


def test_decision_needs_a_proved_contact(app: Flask, client: FlaskClient, caller: Caller,
                                         visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    token = visitor.csrf(f"/consent/{created['id']}")
    response = visitor.client.post(f"/consent/{created['id']}/decision", data={
        "csrf_token": token, "notice_sha256": "0" * 64, "locale": "en", "operations": ["face_swap"],
        "action": "approve"})
    assert response.status_code == 401
    assert _consents(app) == 0


def test_after_granting_the_subject_returns_to_the_registered_redirect(
    client: FlaskClient, caller: Caller, visitor: PortalVisitor
) -> None:
    created = create_consent_request(client, caller.token, redirect_uri=REDIRECT_URI)
    response = visitor.grant(created["id"], ["face_swap"])
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://app.example/consent/done"
    assert parse_qs(location.query) == {"from": ["gateway"], "request_id": [created["id"]], "status": ["granted"]}
    assert client.get(f"/consent/{created['id']}").status_code == 409  # already answered


def test_declining_records_it_and_returns_to_the_app(app: Flask, client: FlaskClient, caller: Caller,
                                                     visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, redirect_uri=REDIRECT_URI)
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    assert "form-action 'self' https://app.example" in visitor.client.get(
        f"/consent/{created['id']}").headers["Content-Security-Policy"]
    response = visitor.client.post(f"/consent/{created['id']}/decision", data={
        "csrf_token": visitor.field(html, "csrf_token"), "notice_sha256": visitor.field(html, "notice_sha256"),
        "locale": "en", "action": "decline"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query)["status"] == ["declined"]
    request = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()
    assert request["status"] == "declined"
    assert request["consent_id"] is None
    assert len(audit_entries(app, "consent_request.declined")) == 1
    assert _consents(app) == 0


def test_unknown_request_is_a_plain_404_page(visitor: PortalVisitor) -> None:
    response = visitor.client.get("/consent/creq_nope")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "does not exist" in response.get_data(as_text=True)


@pytest.mark.parametrize(("how", "expected"), [
    ({"headers": {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}}, "请求您的同意"),
    ({"query": "?lang=zh-CN"}, "请求您的同意"),
    ({"headers": {"Accept-Language": "fr-FR"}}, "asks for your consent"),
])
def test_language_follows_the_browser_or_the_choice(client: FlaskClient, caller: Caller,
                                                    visitor: PortalVisitor, how: dict[str, Any],
                                                    expected: str) -> None:
    created = create_consent_request(client, caller.token)
    response = visitor.client.get(f"/consent/{created['id']}{how.get('query', '')}", headers=how.get("headers", {}))
    assert expected in response.get_data(as_text=True)


def test_the_apps_locale_hint_and_a_chinese_notice_in_the_record(app: Flask, client: FlaskClient,
                                                                 caller: Caller, visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token, locale="zh-CN", operations=["voice_clone"])
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    assert '<html lang="zh-CN">' in html
    assert "声音克隆" in html
    assert "您可以随时撤回" in html
    visitor.decide(created["id"], ["voice_clone"])
    granted = audit_entries(app, "consent.granted")[0]
    assert granted["detail"]["notice"]["locale"] == "zh-CN"
    assert "您的验证码是" in outbox_messages(app)[-1]["text"]


def test_the_notice_says_everything_issue_4_lists(app: Flask, client: FlaskClient, caller: Caller,
                                                  visitor: PortalVisitor) -> None:
    register_algorithm(app, "网信算备110108823483901230011号", operations=("face_swap",), name="SwapPro")
    created = create_consent_request(client, caller.token, operations=["face_swap"], max_uses=5,
                                     duration_days=14, algorithms=["网信算备110108823483901230011号"])
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    for fact in ("Birthday Videos", "SwapPro", "网信算备110108823483901230011号", "Face swap",
                 "Put your face in a birthday video", "14 days", "at most 5 edits", "three years",
                 "withdraw", "http://gateway.test/me"):
        assert fact in html, fact


def test_session_cookie_is_locked_down_and_holds_no_contact(database_url: str, tmp_path: Path) -> None:
    application = create_app(app_config(database_url, tmp_path, ISSUER="https://gateway.example"))
    application.instance_path = str(tmp_path / "instance")
    init_keys(application)
    api = application.test_client()
    created = create_consent_request(api, token_for(api, make_app_client(application)))
    browser = application.test_client()
    response = browser.get(f"/consent/{created['id']}", base_url="https://gateway.example")
    cookie = response.headers["Set-Cookie"]
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in cookie, attribute
    visitor = PortalVisitor(application, browser)
    visitor.client.post(f"/consent/{created['id']}/code", base_url="https://gateway.example",
                        data={"csrf_token": visitor.field(response.get_data(as_text=True), "csrf_token")})
    assert cookie.startswith("__Host-consent_gateway_session=")
    stored = browser.get_cookie("__Host-" + SESSION_COOKIE, domain="gateway.example")
    assert stored is not None
    # Signed, not encrypted, so it must not carry anything a reader should not see.
    state = application.session_interface.get_signing_serializer(application).loads(stored.value)  # type: ignore[attr-defined]
    assert "alice" not in str(state)
    assert state["creq"][created["id"]]["masked"] == "a***@example.com"
    with application.app_context():
        db.engine.dispose()
