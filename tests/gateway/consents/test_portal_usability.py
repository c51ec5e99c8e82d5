"""The portal as a person on a phone expects it (issue 10, items 10 to 13).

New codes that reach the same address, a way forward from a dead code, language links that lead to
pages, reloads that cost nothing, an app that introduces itself, and /me in plain words and local time.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from consent.models import OneTimeCode
from consent.policy import DenyReason
from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.auth.oauth import create_client
from gateway.core.clock import utcnow
from gateway.core.db import db
from tests.conftest import SESSION_COOKIE
from tests.factories import (
    App,
    PortalVisitor,
    audit_entries,
    bearer,
    create_consent_request,
    last_code,
    outbox_messages,
    register_algorithm,
    token_for,
)
from tests.gateway.consents.conftest import Caller

BOB = "bob@example.com"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MEDIA = [{"role": "source", "sha256": "a" * 64}]


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _attempts(app: Flask) -> int:
    with app.app_context():
        return sum(row.attempts for row in db.session.scalars(select(OneTimeCode)))


def _typed(client: FlaskClient, caller: Caller, visitor: PortalVisitor, contact: str = BOB) -> str:
    """A request where the app did not name the person, who types their address and gets a code."""
    created = create_consent_request(client, caller.token, contact=None)
    response = visitor.send_code(created["id"], contact)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return str(created["id"])


def _lang_link(html: str) -> str:
    found = re.search(r'<a href="([^"]+)"[^>]*id="lang"', html)
    assert found, "no language link"
    return found.group(1).replace("&amp;", "&")


def _grant(client: FlaskClient, caller: Caller, **body: object) -> str:
    created = create_consent_request(client, caller.token, **body)  # type: ignore[arg-type]
    PortalVisitor(client.application).grant(created["id"], list(body.get("operations", ["face_swap"])))  # type: ignore[call-overload]
    consent_id: str = client.get(f"/v1/consent-requests/{created['id']}",
                                 headers=bearer(caller.token)).get_json()["consent_id"]
    return consent_id


def _app_with_metadata(app: Flask, **metadata: str) -> App:
    now = utcnow()
    with app.app_context(), db.unit_of_work() as session:
        client, secret = create_client(session, name="Birthday Videos", scope="consent:read consent:write",
                                       redirect_uris=[], actor=OPERATOR, journal=AuditJournal(session, now), now=now,
                                       **metadata)
        return App(client.client_id, secret)


# --- 10: a new code goes to the same address; a dead code has a way forward ------------------------------


def test_send_a_new_code_goes_to_the_address_typed_before(app: Flask, client: FlaskClient, caller: Caller,
                                                          visitor: PortalVisitor) -> None:
    request_id = _typed(client, caller, visitor)
    first = last_code(app, BOB)
    resend = visitor.send_code(request_id)  # the "Send a new code" button sends no address
    assert resend.status_code == 303, resend.get_data(as_text=True)[:500]
    assert [m["to"] for m in outbox_messages(app)] == [BOB, BOB]
    second = last_code(app, BOB)
    if first != second:
        assert visitor.verify(request_id, first).status_code == 400
    assert visitor.verify(request_id, second).status_code == 303
    assert 'name="notice_sha256"' in visitor.page(f"/consent/{request_id}")
    # The address is still not in the cookie, in clear.
    cookie = visitor.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    assert "bob" not in app.session_interface.get_signing_serializer(app).loads(cookie.value).__repr__()  # type: ignore[attr-defined]


def test_after_five_wrong_codes_the_page_offers_a_new_code_and_another_address(
    app: Flask, client: FlaskClient, caller: Caller, visitor: PortalVisitor
) -> None:
    request_id = _typed(client, caller, visitor)
    wrong = _wrong(last_code(app, BOB))
    for _ in range(5):
        visitor.verify(request_id, wrong)
    html = visitor.page(f"/consent/{request_id}")
    assert 'name="code"' not in html  # no Confirm for a code that cannot work
    assert "can no longer be used" in html
    assert re.search(r'class="primary" id="resend"', html)
    assert 'id="start-over"' in html
    # A new code, to the same address, works.
    assert visitor.send_code(request_id).status_code == 303
    assert 'name="code"' in visitor.page(f"/consent/{request_id}")
    assert visitor.verify(request_id, last_code(app, BOB)).status_code == 303


def test_use_another_address_starts_again(app: Flask, client: FlaskClient, caller: Caller,
                                          visitor: PortalVisitor) -> None:
    request_id = _typed(client, caller, visitor)
    moved = visitor.post(f"/consent/{request_id}/start-over", {}, f"/consent/{request_id}")
    assert moved.status_code == 303
    assert moved.headers["Location"].endswith(f"/consent/{request_id}")
    html = visitor.page(f"/consent/{request_id}")
    assert 'name="contact"' in html
    assert visitor.send_code(request_id, "carol@example.com").status_code == 303
    assert visitor.verify(request_id, last_code(app, "carol@example.com")).status_code == 303


def test_an_expired_code_has_a_way_forward(app: Flask, client: FlaskClient, caller: Caller,
                                           visitor: PortalVisitor) -> None:
    with freeze_time(START) as frozen:
        request_id = _typed(client, Caller(caller.app, token_for(client, caller.app)), visitor)
        code = last_code(app, BOB)
        frozen.tick(timedelta(minutes=10))
        assert visitor.verify(request_id, code).status_code == 400
        html = visitor.page(f"/consent/{request_id}")
        assert 'name="code"' not in html
        assert visitor.send_code(request_id).status_code == 303
        assert visitor.verify(request_id, last_code(app, BOB)).status_code == 303


def test_where_the_app_named_the_person_there_is_no_other_address(client: FlaskClient, caller: Caller,
                                                                  visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    assert 'id="resend"' in html
    assert 'id="start-over"' not in html


# --- 11: language links lead to pages; a used-up code says so; reloads cost nothing ---------------------


def test_the_language_link_after_a_wrong_code_leads_to_a_page(app: Flask, client: FlaskClient, caller: Caller,
                                                              visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    refused = visitor.verify(created["id"], _wrong(last_code(app)))
    assert refused.status_code == 400
    switched = visitor.client.get(_lang_link(refused.get_data(as_text=True)))
    assert switched.status_code == 200
    assert switched.mimetype == "text/html"
    assert "验证码" in switched.get_data(as_text=True)


def test_the_language_link_after_approving_nothing_leads_to_a_page(client: FlaskClient, caller: Caller,
                                                                   visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.prove(created["id"])
    refused = visitor.decide(created["id"], [])
    assert refused.status_code == 422
    link = _lang_link(refused.get_data(as_text=True))
    assert link == f"/consent/{created['id']}?lang=zh-CN"
    switched = visitor.client.get(link)
    assert switched.status_code == 200
    assert "请逐项勾选" in switched.get_data(as_text=True)


def test_the_fifth_wrong_code_says_plainly_that_the_code_is_used_up(app: Flask, client: FlaskClient,
                                                                     caller: Caller, visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.send_code(created["id"])
    wrong = _wrong(last_code(app))
    for _ in range(4):
        visitor.verify(created["id"], wrong)
    fifth = visitor.verify(created["id"], wrong).get_data(as_text=True)
    assert "used up" in fifth
    assert "send yourself a new one" in fifth
    assert 'name="code"' not in fifth
    assert ">Confirm<" not in fifth
    assert 'id="resend"' in fifth


def _code_form(visitor: PortalVisitor, path: str) -> dict[str, str]:
    html = visitor.page(path)
    return {"csrf_token": visitor.field(html, "csrf_token"), "attempt": visitor.field(html, "attempt")}


def test_reloading_after_a_wrong_code_spends_no_attempt(app: Flask, client: FlaskClient, caller: Caller,
                                                        visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    screen = f"/consent/{created['id']}"
    visitor.send_code(created["id"])
    form = {**_code_form(visitor, screen), "code": _wrong(last_code(app))}
    first = visitor.client.post(f"{screen}/verify", data=form)
    assert first.status_code == 400
    assert "4 attempts left" in first.get_data(as_text=True)
    # The browser's reload sends the very same form again.
    again = visitor.client.post(f"{screen}/verify", data=form)
    assert again.status_code == 303
    assert again.headers["Location"].endswith(screen)
    assert _attempts(app) == 1
    assert "4 attempts left" in visitor.page(screen)  # the answer, once
    assert "attempts left" not in visitor.page(screen)
    # The form as the page now renders it is a new attempt, and counts.
    counted = visitor.client.post(f"{screen}/verify", data={**_code_form(visitor, screen), "code": form["code"]})
    assert "3 attempts left" in counted.get_data(as_text=True)
    assert len(audit_entries(app, "code.failed")) == 2


def test_reloading_after_a_wrong_sign_in_code_spends_no_attempt(app: Flask, client: FlaskClient,
                                                                caller: Caller) -> None:
    _grant(client, caller)
    me = PortalVisitor(app)
    me.post("/me/code", {"contact": "alice@example.com"}, "/me")
    form = {**_code_form(me, "/me"), "code": _wrong(last_code(app))}
    assert me.client.post("/me/verify", data=form).status_code == 400
    before = _attempts(app)
    again = me.client.post("/me/verify", data=form)
    assert again.status_code == 303
    assert _attempts(app) == before
    assert "4 attempts left" in me.page("/me")


# --- 12: the app introduces itself; "verified as …, not you?" ---------------------------------------------

LOGO = "https://cdn.birthday.example/logo.png"


def test_the_consent_screen_shows_the_apps_publisher_policy_terms_and_logo(app: Flask, client: FlaskClient,
                                                                          visitor: PortalVisitor) -> None:
    registered = _app_with_metadata(app, client_uri="https://birthday.example/",
                                    policy_uri="https://birthday.example/privacy",
                                    tos_uri="https://birthday.example/terms", logo_uri=LOGO)
    created = create_consent_request(client, token_for(client, registered))
    response = visitor.client.get(f"/consent/{created['id']}")
    html = response.get_data(as_text=True)
    assert 'href="https://birthday.example/"' in html
    assert ">birthday.example</a>" in html
    assert 'href="https://birthday.example/privacy"' in html
    assert 'href="https://birthday.example/terms"' in html
    logo = re.search(r"<img [^>]*>", html)
    assert logo is not None
    for attribute in (f'src="{LOGO}"', 'alt="Logo of Birthday Videos"', 'width="48"', 'height="48"'):
        assert attribute in logo.group(0)
    csp = response.headers["Content-Security-Policy"]
    assert "img-src 'self' https://cdn.birthday.example;" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    # The notice step shows the card too.
    visitor.prove(created["id"])
    assert 'href="https://birthday.example/privacy"' in visitor.page(f"/consent/{created['id']}")


def test_an_app_without_metadata_lets_in_no_outside_image(client: FlaskClient, caller: Caller,
                                                          visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    response = visitor.client.get(f"/consent/{created['id']}")
    assert "<img" not in response.get_data(as_text=True)
    assert "img-src 'self';" in response.headers["Content-Security-Policy"]


def test_the_notice_says_who_was_verified_and_not_you_starts_again(app: Flask, client: FlaskClient,
                                                                   caller: Caller, visitor: PortalVisitor) -> None:
    request_id = _typed(client, caller, visitor)
    assert visitor.verify(request_id, last_code(app, BOB)).status_code == 303
    html = visitor.page(f"/consent/{request_id}")
    assert "Verified as b***@example.com." in html
    assert 'id="not-you"' in html
    assert "Sign out" in visitor.page("/me")  # proving the address signed in to /me
    moved = visitor.post(f"/consent/{request_id}/start-over", {}, f"/consent/{request_id}")
    assert moved.status_code == 303
    html = visitor.page(f"/consent/{request_id}")
    assert 'name="contact"' in html
    assert 'name="notice_sha256"' not in html
    assert "Sign in with a one-time code" in visitor.page("/me")  # and that sign-in ended


def test_not_you_explains_when_the_app_named_the_person(client: FlaskClient, caller: Caller,
                                                        visitor: PortalVisitor) -> None:
    created = create_consent_request(client, caller.token)
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    assert "Verified as a***@example.com." in html
    assert "<summary>Not you?</summary>" in html
    assert "asked for the consent of the person who uses a***@example.com" in html
    assert "/start-over" not in html


# --- 13: /me in plain words, local time, ended consents, withdrawal, receipts, punctuation ---------------


def test_history_names_the_algorithm_and_says_why_an_edit_was_refused(app: Flask, client: FlaskClient,
                                                                      caller: Caller) -> None:
    register_algorithm(app, "FN-1", operations=("face_swap", "face_attribute_edit"), name="SwapPro")
    consent_id = _grant(client, caller, algorithms=["FN-1"])
    denied = client.post("/v1/decisions", headers=bearer(caller.token), json={
        "operation": "face_attribute_edit", "algorithm": "FN-1", "consents": [consent_id], "media": MEDIA})
    assert denied.status_code == 403
    assert denied.get_json()["reason"] == "operation_not_consented"
    me = PortalVisitor(app)
    me.sign_in()
    html = me.page(f"/me/consents/{consent_id}")
    assert "operation_not_consented" not in html
    assert "you did not consent to this operation" in html
    assert "SwapPro" in html
    assert "FN-1" in html
    zh = me.page(f"/me/consents/{consent_id}?lang=zh-CN")
    assert "您未同意此项操作" in zh
    assert "SwapPro\N{FULLWIDTH LEFT PARENTHESIS}Test Provider\N{FULLWIDTH COMMA}备案编号 FN-1" in zh


def test_every_deny_reason_and_every_action_a_person_sees_is_in_words() -> None:
    files = resources.files("gateway.i18n")
    for locale in ("en.json", "zh-CN.json"):
        catalogue = json.loads(files.joinpath(locale).read_text("utf-8"))
        for reason in DenyReason:
            assert f"reason.{reason.value}" in catalogue, (locale, reason)
        for action in ("consent.granted", "consent.withdrawn", "consent.revoked", "consent.expired",
                       "consent.exhausted", "receipt.downloaded", "decision.allowed", "decision.denied",
                       "decision.completed", "decision.failed"):
            assert f"history.{action}" in catalogue, (locale, action)


def test_times_are_utc_in_a_time_element_completed_by_a_script(app: Flask, client: FlaskClient,
                                                               caller: Caller) -> None:
    with freeze_time(START):
        consent_id = _grant(client, Caller(caller.app, token_for(client, caller.app)))
        me = PortalVisitor(app)
        me.sign_in()
        for path in ("/me", f"/me/consents/{consent_id}"):
            response = me.client.get(path)
            html = response.get_data(as_text=True)
            assert '<time datetime="2026-03-01T09:00:00Z">2026-03-01 09:00 UTC</time>' in html, path
            assert '<script src="/static/portal.js" defer></script>' in html
            assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    script = me.client.get("/static/portal.js")
    assert script.status_code == 200
    assert "time[datetime]" in script.get_data(as_text=True)
    assert "innerHTML" not in script.get_data(as_text=True)


def test_an_ended_consent_says_ended_on_not_valid_until(app: Flask, client: FlaskClient, caller: Caller) -> None:
    consent_id = _grant(client, caller)
    me = PortalVisitor(app)
    me.sign_in()
    me.post(f"/me/consents/{consent_id}/withdraw", {}, f"/me/consents/{consent_id}/withdraw")
    for path in ("/me", f"/me/consents/{consent_id}"):
        html = me.page(path)
        assert "Ended on" in html, path
        assert "Valid until" not in html, path


def test_the_withdraw_confirmation_lists_the_operations(app: Flask, client: FlaskClient, caller: Caller) -> None:
    consent_id = _grant(client, caller, operations=["face_swap", "voice_clone"])
    me = PortalVisitor(app)
    me.sign_in()
    html = me.page(f"/me/consents/{consent_id}/withdraw")
    assert "Face swap" in html
    assert "Voice cloning" in html
    assert "Put your face in a birthday video" in html


def test_already_answered_says_whether_it_was_approved_or_declined(client: FlaskClient, caller: Caller) -> None:
    granted = create_consent_request(client, caller.token)
    PortalVisitor(client.application).grant(granted["id"], ["face_swap"])
    page = client.get(f"/consent/{granted['id']}")
    assert page.status_code == 409
    assert "consent was given" in page.get_data(as_text=True)

    declined = create_consent_request(client, caller.token)
    visitor = PortalVisitor(client.application)
    visitor.prove(declined["id"])
    visitor.decide(declined["id"], [], action="decline")
    page = client.get(f"/consent/{declined['id']}")
    assert page.status_code == 409
    assert "it was declined" in page.get_data(as_text=True)


@pytest.mark.parametrize("action", ["maybe", "Decline", "", None])
def test_only_the_two_buttons_decide(client: FlaskClient, caller: Caller, action: str | None) -> None:
    created = create_consent_request(client, caller.token)
    visitor = PortalVisitor(client.application)
    visitor.prove(created["id"])
    html = visitor.page(f"/consent/{created['id']}")
    data = {name: visitor.field(html, name) for name in ("csrf_token", "notice_sha256", "locale")}
    data["operations"] = "face_swap"
    if action is not None:
        data["action"] = action
    response = visitor.client.post(f"/consent/{created['id']}/decision", data=data)
    assert response.status_code == 422
    assert "Choose Approve or Decline" in response.get_data(as_text=True)
    # Nothing was decided: the request is still pending and can be answered with a button.
    status = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()["status"]
    assert status == "pending"
    assert visitor.decide(created["id"], ["face_swap"]).status_code in (200, 303)


def test_a_printable_receipt_beside_the_signed_json(app: Flask, client: FlaskClient, caller: Caller) -> None:
    with freeze_time(START):
        consent_id = _grant(client, Caller(caller.app, token_for(client, caller.app)), duration_days=30)
        me = PortalVisitor(app)
        me.sign_in()
        details = me.page(f"/me/consents/{consent_id}")
        assert f'href="/me/consents/{consent_id}/receipt.html"' in details
        assert f'href="/me/consents/{consent_id}/receipt"' in details
        response = me.client.get(f"/me/consents/{consent_id}/receipt.html")
        record = json.loads(me.client.get(f"/me/consents/{consent_id}/receipt").get_data(as_text=True))["record"]
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for fact in ("Consent receipt", "Birthday Videos", "Face swap", "Put your face in a birthday video",
                 '<time datetime="2026-03-01T09:00:00Z" data-seconds>2026-03-01 09:00:00 UTC</time>',
                 '<time datetime="2026-03-31T09:00:00Z" data-seconds>', "a one-time code sent by email",
                 consent_id, f'href="/me/consents/{consent_id}/receipt"'):
        assert fact in html, fact
    assert record in html
    assert "@media print" in me.client.get("/static/portal.css").get_data(as_text=True)
    # Both are the subject taking a copy, and both are audited.
    assert [e["detail"]["form"] for e in audit_entries(app, "receipt.downloaded")] == ["html", "json"]


def test_the_receipt_says_when_the_code_was_checked(app: Flask, client: FlaskClient, caller: Caller) -> None:
    with freeze_time(START) as frozen:
        token = token_for(client, caller.app)
        created = create_consent_request(client, token)
        person = PortalVisitor(app)
        person.prove(created["id"])  # the code is checked at 09:00
        frozen.move_to(START + timedelta(minutes=3))
        assert person.decide(created["id"], ["face_swap"]).status_code in (200, 303)  # approved at 09:03
        consent_id = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(token)).get_json()[
            "consent_id"]
        html = person.page(f"/me/consents/{consent_id}/receipt.html")
    checked = re.search(r"Identity checked with</dt>\s*<dd>(.*?)</dd>", html, re.S)
    assert checked is not None
    assert '<time datetime="2026-03-01T09:00:00Z"' in checked.group(1)
    assert '<time datetime="2026-03-01T09:03:00Z" data-seconds>' in html  # when it was granted


def test_chinese_pages_use_full_width_punctuation(app: Flask, client: FlaskClient, caller: Caller) -> None:
    _grant(client, caller, operations=["face_swap", "voice_clone"])
    me = PortalVisitor(app)
    me.sign_in()
    html = me.page("/me?lang=zh-CN")
    assert "操作\N{FULLWIDTH COLON}" in html
    # Full-width brackets carry their own space: none is put before them.
    receipt = me.page(f"/me/consents/{_first_consent(html)}/receipt.html?lang=zh-CN")
    assert "</span>" in receipt
    assert " <span class=\"fine\">\N{FULLWIDTH LEFT PARENTHESIS}" not in receipt
    assert "<span class=\"fine\">\N{FULLWIDTH LEFT PARENTHESIS}cli_" in receipt
    assert "操作:" not in html
    assert "、" in html
    assert not re.search(r"[\u4e00-\u9fff][:,;]", html)


def test_docs_separate_alternative_scopes(client: FlaskClient) -> None:
    html = client.get("/docs").get_data(as_text=True)
    assert "edit:faceedit:voice" not in html
    assert "<code>edit:face</code> <em>or</em> <code>edit:voice</code>" in html


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_every_portal_page_renders_in_both_languages(app: Flask, client: FlaskClient, caller: Caller,
                                                     lang: str) -> None:
    consent_id = _grant(client, caller)
    me = PortalVisitor(app)
    me.sign_in()
    for path in ("/me", f"/me/consents/{consent_id}", f"/me/consents/{consent_id}/withdraw",
                 f"/me/consents/{consent_id}/receipt.html"):
        assert me.client.get(f"{path}?lang={lang}").status_code == 200, path


@pytest.mark.parametrize(("method", "path", "status"), [
    ("PUT", "/consent/creq_anything/verify", 405),
    ("DELETE", "/consent/creq_anything/decision", 405),
    ("PUT", "/me/verify", 405),
    ("GET", "/consent/", 404),
    ("GET", "/me/withdraw", 404),
])
def test_a_wrong_url_or_method_under_the_portal_is_a_page(client: FlaskClient, method: str, path: str,
                                                          status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<html" in page
    assert 'href="/me"' in page
    # The portal's own headers hold on these pages too.
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Frame-Options"] == "DENY"
    # The API beside it still answers problem+json.
    api = client.open("/v1/nothing-here", method=method)
    assert api.mimetype == "application/problem+json"


@pytest.mark.parametrize(("target", "page"), [
    ("/consent/creq_anything/code", "/consent/creq_anything"),
    ("/consent/creq_anything/verify", "/consent/creq_anything"),
    ("/consent/creq_anything/decision", "/consent/creq_anything"),
    ("/consent/creq_anything/start-over", "/consent/creq_anything"),
    ("/me/code", "/me"),
    ("/me/verify", "/me"),
    ("/me/logout", "/me"),
])
def test_a_form_target_opened_as_a_page_leads_back_to_its_page(client: FlaskClient, target: str, page: str) -> None:
    # The address bar shows the target after a step; reopening it (history, Enter, a shared link) must
    # not say "something went wrong, nothing was changed" after a decline that was recorded.
    response = client.get(target)
    assert response.status_code == 303
    assert response.headers["Location"] == page


def _first_consent(html: str) -> str:
    found = re.search(r'id="consent-(cns_[A-Za-z0-9_-]+)"', html)
    assert found is not None
    return found.group(1)

