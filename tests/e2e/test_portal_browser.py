"""The consent screen and /me in real Chromium against the real server.

An app asks for three operations; the person opens the link, reads the code from the outbox,
approves two; the app sees exactly those two and verifies the record with PyJWT against the JWKS
fetched over HTTP; the person withdraws on /me; the app sees the withdrawal and verifies the
revocation record. Once on a desktop in English with JavaScript switched off (the pages must not need
it), once on a 390 by 844 phone in Simplified Chinese, signing in to /me afresh.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.e2e.conftest import LiveServer
from tests.factories import last_code, make_app_client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
CONTACT = "mei@example.com"

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); set CI=true to make this fail")


@dataclass(frozen=True)
class Variant:
    name: str
    locale: str
    viewport: dict[str, int] | None
    javascript: bool
    fresh_sign_in: bool  # withdraw from another browser session, signing in to /me by code


VARIANTS = [
    pytest.param(Variant("desktop-en-no-js", "en-US", None, javascript=False, fresh_sign_in=False),
                 id="desktop-en-no-js"),
    pytest.param(Variant("phone-zh-CN", "zh-CN", {"width": 390, "height": 844}, javascript=True,
                         fresh_sign_in=True), id="phone-zh-CN"),
]

TEXT = {
    "en-US": {"notice": "asks for your consent", "granted": "Welcome back", "withdrawn": "Your consent is withdrawn"},
    "zh-CN": {"notice": "请求您同意", "granted": "Welcome back", "withdrawn": "您的同意已撤回"},
}


class _AppCallback:
    """The app's own page that the person returns to (another origin than the gateway)."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        status = request.args.get("status", "?")
        body = f"<!doctype html><title>App</title><h1>Welcome back</h1><p id=status>{status}</p>"
        return Response(body, mimetype="text/html")(environ, start_response)


@pytest.fixture
def app_callback() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, _AppCallback(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/consent-done"
    server.shutdown()
    server.server_close()


def _token(base: str, client_id: str, secret: str) -> str:
    response = httpx.post(f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _verify_with_pyjwt(base: str, token: str, typ: str) -> dict[str, Any]:
    """What any third party does: fetch the JWKS over HTTP and verify with a standard library."""
    assert jwt.get_unverified_header(token)["typ"] == typ
    signing_key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, signing_key, algorithms=["EdDSA"], options={"verify_aud": False},
                                        issuer=base)
    return claims


@pytest.mark.parametrize("variant", VARIANTS)
def test_consent_grant_and_withdrawal_in_chromium(live_server: LiveServer, app_callback: str,
                                                  variant: Variant) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    base = live_server.url
    registered = make_app_client(live_server.app, name="Birthday Videos", redirect_uris=(app_callback,))
    token = _token(base, registered.client_id, registered.secret)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    created = api.post("/v1/consent-requests", json={
        "subject": {"contact": CONTACT, "reference": "user-7"},
        "operations": ["face_swap", "face_reenactment", "voice_clone"],
        # A long unbroken URL in the purpose must wrap on a phone, not widen the page.
        "purpose": "Star in your friend's birthday video; details at https://videos.example/" + "x" * 120,
        "duration_days": 30,
        "redirect_uri": app_callback,
    })
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    text = TEXT[variant.locale]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            options: dict[str, Any] = {"locale": variant.locale, "java_script_enabled": variant.javascript}
            if variant.viewport:
                options.update(viewport=variant.viewport, is_mobile=True, has_touch=True, device_scale_factor=3)
            context = browser.new_context(**options)
            page = context.new_page()

            page.goto(created.json()["consent_url"])
            assert "m***@example.com" in page.content()
            page.locator("button[type=submit].primary").click()
            page.fill("#code", last_code(live_server.app, CONTACT))
            page.locator("button[type=submit].primary").click()
            assert text["notice"] in page.locator("h1").inner_text()
            boxes = page.locator("input[type=checkbox][name=operations]")
            assert boxes.count() == 3
            assert all(not boxes.nth(i).is_checked() for i in range(3))
            if variant.viewport:
                _assert_fits_the_phone(page, variant.viewport["width"])
            page.check("#op-face_swap")
            page.check("#op-voice_clone")
            page.click("#approve")

            # Back at the app, with the request id and the outcome.
            page.wait_for_url(f"{app_callback}?*")
            returned = parse_qs(urlsplit(page.url).query)
            assert returned == {"request_id": [request_id], "status": ["granted"]}
            assert text["granted"] in page.content()

            request = api.get(f"/v1/consent-requests/{request_id}").json()
            assert request["status"] == "granted"
            consent = api.get(f"/v1/consents/{request['consent_id']}").json()
            assert consent["status"] == "active"
            assert consent["operations"] == ["face_swap", "voice_clone"]
            claims = _verify_with_pyjwt(base, consent["record"], "consent+jwt")
            assert claims["consent"]["operations"] == ["face_swap", "voice_clone"]
            assert claims["aud"] == registered.client_id
            assert claims["consent"]["notice"]["locale"] == ("zh-CN" if variant.locale == "zh-CN" else "en")

            if variant.fresh_sign_in:
                context.close()
                context = browser.new_context(**options)
                page = context.new_page()
                page.goto(f"{base}/me")
                page.fill("#contact", CONTACT)
                page.locator("button[type=submit].primary").click()
                page.fill("#code", last_code(live_server.app, CONTACT))
                page.locator("button[type=submit].primary").click()
            else:
                page.goto(f"{base}/me")
            assert "Birthday Videos" in page.content()
            page.click(f"#consent-{consent['id']} a.button")
            page.click("#withdraw")
            page.click("#confirm-withdraw")
            assert text["withdrawn"] in page.content()
            if variant.viewport:
                _assert_fits_the_phone(page, variant.viewport["width"])
            context.close()
        finally:
            browser.close()

    ended = api.get(f"/v1/consents/{consent['id']}").json()
    assert ended["status"] == "withdrawn"
    revocation = _verify_with_pyjwt(base, ended["revocation"], "consent-revocation+jwt")
    assert revocation["consent"] == consent["id"]
    assert revocation["by"] == "subject"
    verified = httpx.post(f"{base}/v1/consents/verify", json={"record": ended["revocation"]}).json()
    assert verified["valid"] is True
    assert verified["status"] == "withdrawn"
    api.close()


def _assert_fits_the_phone(page: Any, width: int) -> None:
    # Nothing wider than the screen: no sideways scrolling to find a checkbox or a button.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for selector in ("button", "input[type=checkbox]"):
        for box in (page.locator(selector).nth(i).bounding_box() for i in range(page.locator(selector).count())):
            if box is not None:
                assert box["x"] >= 0
                assert box["x"] + box["width"] <= width + 1


@pytest.mark.parametrize(("zone", "shown"), [("Asia/Shanghai", "2026-03-01 17:00 UTC+8"), ("UTC", None)])
def test_the_local_time_is_added_only_where_it_differs_from_utc(zone: str, shown: str | None) -> None:
    """portal.js itself, in Chromium, on a <time> as the pages write it."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    script = (Path(__file__).parents[2] / "gateway" / "static" / "portal.js").read_text(encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(timezone_id=zone).new_page()
            page.set_content('<body data-local-time="(your time: {time})"><p id="t">'
                             '<time datetime="2026-03-01T09:00:00Z">2026-03-01 09:00 UTC</time></p></body>')
            page.add_script_tag(content=script)
            text = page.inner_text("#t")
        finally:
            browser.close()
    if shown is None:
        assert text == "2026-03-01 09:00 UTC"  # a reader in UTC gets no copy of the same time
    else:
        assert shown in text
