"""The selfie step of the consent screen in real Chromium, with binding on (the product's default).

Desktop: Chromium's fake webcam plays a video made from a real photo of a person; the page's camera
button takes the photo, the person approves, and the record names the template made from it. Phone (no
camera API used, JavaScript off): the file input alone, with ``capture="user"`` so a phone opens its
front camera; here Playwright picks the photo file as the camera app would hand it over.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway import create_app
from tests.conftest import app_config, init_keys
from tests.e2e.conftest import LiveServer, start_server
from tests.e2e.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium, _token
from tests.factories import last_code, make_app_client

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
pytest.importorskip("dlib")

FACES = Path(__file__).parents[1] / "data" / "faces"
CONTACT = "lin@example.com"


@pytest.fixture
def bound_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(create_app(app_config(database_url, tmp_path, BINDING_MODALITIES=("face",))))
    server.app.config["ISSUER"] = server.url
    init_keys(server.app)
    yield server
    server.stop()


def _webcam_video(photo: Path, out: Path) -> Path:
    """A few seconds of Y4M (what Chromium's fake capture device reads) showing ``photo``."""
    from PIL import Image

    image = Image.open(photo).convert("RGB").resize((640, 480))
    y, u, v = image.convert("YCbCr").split()
    # 4:2:0: the chroma planes at half size.
    u, v = (plane.resize((320, 240)) for plane in (u, v))
    frame = b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes()
    with out.open("wb") as handle:
        handle.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(30):
            handle.write(frame)
    return out


def _ask(server: LiveServer) -> tuple[httpx.Client, str, str]:
    registered = make_app_client(server.app, name="Birthday Videos")
    token = _token(server.url, registered.client_id, registered.secret)
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    created = api.post("/v1/consent-requests", json={"subject": {"contact": CONTACT}, "operations": ["face_swap"],
                                                      "purpose": "Star in your friend's birthday video"})
    assert created.status_code == 201, created.text
    return api, created.json()["id"], created.json()["consent_url"]


def _prove(page: Any, server: LiveServer, url: str) -> None:
    page.goto(url)
    page.locator("button[type=submit].primary").click()
    page.fill("#code", last_code(server.app, CONTACT))
    page.locator("button[type=submit].primary").click()
    page.check("#op-face_swap")


def _granted_record(api: httpx.Client, request_id: str) -> dict[str, Any]:
    request = api.get(f"/v1/consent-requests/{request_id}").json()
    assert request["status"] == "granted", request
    record = api.get(f"/v1/consents/{request['consent_id']}").json()["record"]
    claims: dict[str, Any] = jwt.decode(record, options={"verify_signature": False})
    return claims


def test_a_desktop_webcam_takes_the_selfie(bound_server: LiveServer, tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    video = _webcam_video(FACES / "lin_manuel_miranda_1.jpg", tmp_path / "webcam.y4m")
    api, request_id, url = _ask(bound_server)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            context = browser.new_context(locale="en-US")
            context.grant_permissions(["camera"])
            page = context.new_page()
            _prove(page, bound_server, url)
            page.click("#selfie-camera")
            # Polled from here: the page's CSP (rightly) forbids the eval that wait_for_function uses.
            for _ in range(100):
                if page.evaluate("document.getElementById('selfie-video').videoWidth") > 0:
                    break
                page.wait_for_timeout(100)
            page.click("#selfie-take")
            page.wait_for_selector("#selfie-taken", state="visible")
            assert page.evaluate("document.getElementById('selfie').files.length") == 1
            page.click("#approve")
            page.wait_for_load_state()
            assert "birthday" not in page.url  # no redirect registered: the done page
        finally:
            browser.close()
    claims = _granted_record(api, request_id)
    assert claims["ver"] == 2
    assert set(claims["consent"]["evidence"]["face"]) == {"model", "template_sha256"}


def test_a_phone_without_javascript_uploads_the_photo_from_its_camera(bound_server: LiveServer) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    api, request_id, url = _ask(bound_server)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="en-US", java_script_enabled=False, is_mobile=True,
                                          has_touch=True, viewport={"width": 390, "height": 844})
            page = context.new_page()
            _prove(page, bound_server, url)
            assert page.get_attribute("#selfie", "capture") == "user"
            assert page.is_hidden("[data-camera]")  # the webcam button needs the script
            page.click("#approve")  # no photo yet: told what to do, nothing granted
            assert "photo of your face" in page.content()
            page.check("#op-face_swap")
            page.set_input_files("#selfie", str(FACES / "obama_1.jpg"))
            page.click("#approve")
            page.wait_for_load_state()
        finally:
            browser.close()
    assert _granted_record(api, request_id)["ver"] == 2
