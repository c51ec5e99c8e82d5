"""The demo app with face binding on (the product's default): what the README's demo shows a newcomer.

The gateway, the reference upstream and the demo app each run on a real socket; the person grants on
the hosted consent screen with person A's selfie (the demo's own photo), and the browser is an
``httpx.Client`` on the demo app, which keeps the app's session cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from gateway.biometrics import faces
from gateway.demo import DEMO_FILING_NUMBER, PERSON_A_ANOTHER_PHOTO, PERSON_A_SELFIE, PERSON_B, PHOTOS
from gateway.demo.__main__ import _welcome
from gateway.demo.app import create_demo_app
from gateway.demo.upstream import create_demo_upstream
from tests.e2e.conftest import LiveServer
from tests.factories import PortalVisitor, audit_entries, make_app_client, register_algorithm
from tests.gateway.conftest import Served

pytest.importorskip("dlib")

CONTACT = "person.a@example.com"


@dataclass
class Demo:
    gateway: LiveServer
    url: str
    browser: httpx.Client

    def grant(self, selfie: bytes, operations: tuple[str, ...] = ("face_swap", "face_attribute_edit")) -> str:
        """Ask in the demo app, approve on the consent screen with ``selfie``, come back; the consent id."""
        asked = self.browser.post(f"{self.url}/ask", data={"operation": list(operations)})
        assert asked.status_code == 302, asked.text[:500]
        request_id = urlsplit(asked.headers["location"]).path.rsplit("/", 1)[-1]
        visitor = PortalVisitor(self.gateway.app)
        # The demo app's request names no contact: the person enters their own address on the screen.
        visitor.prove(request_id, CONTACT, enter_contact=True)
        decided = visitor.decide(request_id, list(operations), selfie=selfie)
        assert decided.status_code == 303, decided.get_data(as_text=True)[:800]
        back = self.browser.get(decided.headers["Location"])
        assert back.status_code == 302
        found: list[str] = re.findall(r'name="consent_id" value="([^"]+)"', self.browser.get(f"{self.url}/").text)
        assert found, "the demo app shows no consent"
        return found[-1]

    def edit(self, consent_id: str, which: str, operation: str = "face_swap", **kwargs: Any) -> httpx.Response:
        return self.browser.post(f"{self.url}/edit", data={"consent_id": consent_id, "operation": operation,
                                                           "which": which}, **kwargs)


@pytest.fixture
def demo(gateway_server: Callable[..., LiveServer], served: Callable[[Any], Served]) -> Iterator[Demo]:
    gateway = gateway_server(BINDING_MODALITIES=("face",))
    upstream = served(create_demo_upstream(issuer=gateway.url, jwks=f"{gateway.url}/.well-known/jwks.json",
                                           filing_number=DEMO_FILING_NUMBER))
    register_algorithm(gateway.app, DEMO_FILING_NUMBER, upstream_url=f"{upstream.url}/edit",
                       name="Demo face and voice editor")
    # The app must know its own address (its redirect URI) before it is served: bind first, then build it.
    demo_app: dict[str, Any] = {}

    def built_later(environ: Any, start_response: Any) -> Any:
        return demo_app["app"](environ, start_response)

    address = served(built_later).url
    client = make_app_client(gateway.app, name="Demo Face App", redirect_uris=(f"{address}/back",))
    demo_app["app"] = create_demo_app(gateway=gateway.url, client_id=client.client_id, client_secret=client.secret,
                                      filing_number=DEMO_FILING_NUMBER, public_url=address)
    with httpx.Client(timeout=120) as browser:
        yield Demo(gateway, address, browser)


def _reason(page: httpx.Response) -> str | None:
    found = re.search(r'id="reason">([^<]+)<', page.text)
    return found.group(1) if found else None


def test_the_same_persons_photo_is_edited_and_someone_elses_is_refused(demo: Demo) -> None:
    consent_id = demo.grant(PERSON_A_SELFIE.read_bytes())

    for operation in ("face_swap", "face_attribute_edit"):
        same = demo.edit(consent_id, "same", operation)
        assert same.status_code == 200, same.text[:2000]
        assert "Edited by the demo algorithm" in same.text
        assert "Label verified" in same.text
        assert "exactly the file the app received" in same.text
        assert "another photo of person A" in same.text

        other = demo.edit(consent_id, "other", operation)
        assert other.status_code == 403
        # A page the browser renders, not its source shown as text.
        assert other.headers["content-type"].startswith("text/html")
        assert "The gateway said no" in other.text
        assert _reason(other) == "biometric_mismatch"
        # The problem's detail says which part and how far the face was from the enrolled one.
        assert re.search(r"id=\"detail\">part &#39;target&#39;: a face at .* matches no named subject", other.text)
        assert "a photo of person B" in other.text

    denied = audit_entries(demo.gateway.app, "decision.denied")
    assert [d["reason"] for d in denied] == ["biometric_mismatch"] * 2
    assert len(audit_entries(demo.gateway.app, "decision.completed")) == 2


def test_the_person_can_edit_a_photo_they_upload(demo: Demo) -> None:
    consent_id = demo.grant(PERSON_A_SELFIE.read_bytes())

    mine = demo.edit(consent_id, "upload", "face_attribute_edit",
                     files={"photo": ("me.jpg", PERSON_A_ANOTHER_PHOTO.read_bytes(), "image/jpeg")})
    assert mine.status_code == 200, mine.text[:2000]
    assert "Label verified" in mine.text
    assert "your own photo" in mine.text

    not_mine = demo.edit(consent_id, "upload", "face_swap",
                         files={"photo": ("me.jpg", PERSON_B.read_bytes(), "image/jpeg")})
    assert not_mine.status_code == 403
    assert _reason(not_mine) == "biometric_mismatch"

    nothing = demo.edit(consent_id, "upload", files={"photo": ("", b"", "application/octet-stream")})
    assert nothing.status_code == 400
    assert "Choose a photo first" in nothing.text
    assert demo.edit(consent_id, "somebody").status_code == 400


def test_the_app_says_which_photo_to_upload_and_offers_it(demo: Demo) -> None:
    page = demo.browser.get(f"{demo.url}/").text
    assert "a photo of your face" in page
    assert str(PERSON_A_SELFIE) in page
    download = demo.browser.get(f"{demo.url}/photos/{PERSON_A_SELFIE.name}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/jpeg"
    assert download.content == PERSON_A_SELFIE.read_bytes()
    assert demo.browser.get(f"{demo.url}/photos/..%2F__init__.py").status_code == 404
    assert demo.browser.get(f"{demo.url}/photos/README.md").status_code == 404


def test_the_shipped_photos_are_small_and_the_faces_in_them_are_found() -> None:
    assert sorted(path.name for path in PHOTOS.glob("*.jpg")) == sorted(
        path.name for path in (PERSON_A_SELFIE, PERSON_A_ANOTHER_PHOTO, PERSON_B))
    for path in (PERSON_A_SELFIE, PERSON_A_ANOTHER_PHOTO, PERSON_B):
        with Image.open(path) as image:
            assert max(image.size) <= 640, path
    selfie = faces.enrolment_face(PERSON_A_SELFIE.read_bytes())
    [same] = faces.faces_in_image(PERSON_A_ANOTHER_PHOTO.read_bytes())
    [other] = faces.faces_in_image(PERSON_B.read_bytes())
    # Far from the threshold on either side, so the demo's two answers do not depend on its exact value.
    assert faces.distance(selfie.embedding, same.embedding) < faces.DEFAULT_THRESHOLD - 0.1
    assert faces.distance(selfie.embedding, other.embedding) > faces.DEFAULT_THRESHOLD + 0.2


def _welcome_text(*, face_binding: bool) -> str:
    return _welcome(gateway_url="http://127.0.0.1:8000", app_url="http://127.0.0.1:8002", upstream_port=8001,
                    consent_url="http://127.0.0.1:8000/consent/creq_X",
                    credentials={"client_id": "cli_X", "client_secret": "secret"}, face_binding=face_binding)


def test_the_welcome_names_the_selfie_and_shows_both_edits_from_a_shell() -> None:
    text = _welcome_text(face_binding=True)
    assert "Face binding is on" in text
    assert f"upload person A's selfie (or a photo of yourself), then approve:\n       {PERSON_A_SELFIE}\n" in text
    assert PERSON_A_SELFIE.is_absolute()
    assert f"-F target=@{PERSON_A_ANOTHER_PHOTO} http://127.0.0.1:8000/v1/edits" in text
    assert f"-F target=@{PERSON_B} http://127.0.0.1:8000/v1/edits" in text
    assert '"reason": "biometric_mismatch"' in text
    assert '"reason": "binding_requires_media"' in text
    assert "sample" not in text


def test_the_welcome_does_not_ask_for_a_selfie_when_binding_is_off() -> None:
    text = _welcome_text(face_binding=False)
    assert "Face binding is off" in text
    assert "selfie" not in text
    assert "biometric_mismatch" not in text

