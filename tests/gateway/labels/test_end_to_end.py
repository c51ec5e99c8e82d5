"""Labels end to end: an edit through ``POST /v1/edits`` with the reference upstream comes back labelled,
its outcome digest is the digest of what the app received, and anyone can verify it (API, CLI, demo app)."""

from __future__ import annotations

import hashlib
import io
import json
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from werkzeug.wrappers import Request, Response

from gateway.cli import main
from gateway.demo.app import create_demo_app
from gateway.demo.upstream import create_demo_upstream
from gateway.labels.verifier import verify_label
from tests.e2e.conftest import LiveServer
from tests.factories import App, audit_entries, end_consent, make_app_client, make_consent, register_algorithm
from tests.gateway.conftest import (  # noqa: F401 - fixtures used by this module's tests
    FILING,
    Served,
    gateway_server,
    served,
)
from tests.gateway.demo.test_demo_upstream import AUDIO, SOURCE
from tests.gateway.http.test_openapi_examples import assert_documented
from tests.gateway.labels import media

pytestmark = pytest.mark.e2e


class Gateway:
    def __init__(self, server: LiveServer, upload_dir: Path) -> None:
        self.server = server
        self.url = server.url
        self.app = server.app
        self.upload_dir = upload_dir
        self.edit_app: App = make_app_client(server.app, name="Edit App")
        response = httpx.post(f"{self.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(self.edit_app.client_id, self.edit_app.secret))
        self.token: str = response.json()["access_token"]

    def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = httpx.get(f"{self.url}/.well-known/jwks.json").json()
        return keys

    def edit(self, operation: str, files: dict[str, tuple[str, bytes, str]],
             **terms: Any) -> tuple[httpx.Response, str]:
        consent_id = make_consent(self.app, self.edit_app.client_id, operations=(operation,))
        response = httpx.post(
            f"{self.url}/v1/edits", headers={"Authorization": f"Bearer {self.token}"}, timeout=120,
            files={"request": (None, json.dumps({"operation": operation, "algorithm": FILING,
                                                 "consents": [consent_id], **terms}), "application/json"),
                   **files})
        return response, consent_id

    def verify(self, data: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/labels/verify", files={"file": ("edited", data, "image/png")})


@pytest.fixture
def gateway(gateway_server: Callable[..., LiveServer], tmp_path: Path) -> Gateway:  # noqa: F811
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return Gateway(gateway_server(UPLOAD_DIR=str(upload_dir), UPSTREAM_TIMEOUT_SECONDS=5), upload_dir)


@pytest.fixture
def reference_upstream(gateway: Gateway, served: Callable[[Any], Served]) -> str:  # noqa: F811
    app = create_demo_upstream(issuer=gateway.url, jwks=f"{gateway.url}/.well-known/jwks.json", filing_number=FILING)
    url = served(app).url + "/edit"
    register_algorithm(gateway.app, FILING, upstream_url=url, name="Reference Editor")
    return url


def test_an_edit_through_the_gateway_comes_back_labelled_and_its_digest_is_recorded(
    gateway: Gateway, reference_upstream: str
) -> None:
    response, consent_id = gateway.edit("face_attribute_edit", {"target": ("me.png", SOURCE, "image/png")})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    decision_id = response.headers["Consent-Decision"]
    label = verify_label(io.BytesIO(response.content), gateway.jwks(), issuer=gateway.url)
    assert label.decision_id == decision_id
    assert label.client_id == gateway.edit_app.client_id
    assert label.edit == {"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]}
    # The visible mark: the reference upstream no longer draws one, the gateway does.
    image = Image.open(io.BytesIO(response.content)).convert("L")
    assert image.getpixel((image.width - 12, image.height - 12)) < 60
    # The outcome names the bytes the app received: labels and mark included.
    [completed] = audit_entries(gateway.app, "decision.completed")
    assert completed["decision_id"] == decision_id
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert list(gateway.upload_dir.iterdir()) == []


def test_the_label_carries_the_apps_own_reference_as_propagate_id(gateway: Gateway, reference_upstream: str) -> None:
    response, _ = gateway.edit("face_attribute_edit", {"target": ("me.png", SOURCE, "image/png")},
                               reference="order-2026-0042")
    assert response.status_code == 200, response.text
    label = verify_label(io.BytesIO(response.content), gateway.jwks(), issuer=gateway.url)
    assert label.fields["PropagateID"] == "order-2026-0042"
    assert label.fields["ContentPropagator"] == gateway.edit_app.client_id
    # Signed like every other field: changing it breaks the signature.
    assert b"order-2026-0042" in response.content
    forged = response.content.replace(b"order-2026-0042", b"order-2026-0043")
    assert gateway.verify(forged).json()["valid"] is False


def test_anyone_can_verify_the_file_and_see_where_it_comes_from(gateway: Gateway, reference_upstream: str,
                                                                  tmp_path: Path) -> None:
    response, consent_id = gateway.edit("face_attribute_edit", {"target": ("me.png", SOURCE, "image/png")})
    assert response.status_code == 200, response.text
    spec = httpx.get(f"{gateway.url}/openapi.json").json()

    checked = gateway.verify(response.content)
    report = assert_documented(spec, "post", "/v1/labels/verify", _as_test_response(checked))
    assert report["valid"] is True
    assert report["decision"]["id"] == response.headers["Consent-Decision"]
    assert report["decision"]["received_by_app"] is True
    assert report["decision"]["outcome"] == "completed"
    assert report["algorithm"]["filing_number"] == FILING
    assert report["algorithm"]["name"] == "Reference Editor"
    assert report["algorithm"]["status"] == "active"
    assert report["operation"] == "face_attribute_edit"
    assert report["app"] == {"client_id": gateway.edit_app.client_id, "name": "Edit App"}
    assert report["consents"] == [{"id": consent_id, "status": "active", "active": True}]
    assert report["consents_active"] is True

    end_consent(gateway.app, consent_id, "withdrawn")
    report = gateway.verify(response.content).json()
    assert report["consents"] == [{"id": consent_id, "status": "withdrawn", "active": False}]
    assert report["consents_active"] is False

    altered = bytearray(response.content)
    altered[altered.index(b"IDAT") + 12] ^= 0x01
    report = assert_documented(spec, "post", "/v1/labels/verify", _as_test_response(gateway.verify(bytes(altered))))
    assert report["valid"] is False
    assert report["error"]["code"] == "label_content_mismatch"
    assert report["claimed"]["ProduceID"] == response.headers["Consent-Decision"]

    assert gateway.verify(b"not media").json()["error"]["code"] == "unsupported_format"
    assert httpx.post(f"{gateway.url}/v1/labels/verify", json={"file": "x"}).status_code == 415
    assert httpx.post(f"{gateway.url}/v1/labels/verify", files={"other": ("x", b"x")}).status_code == 422

    # The same answer from the command line, with this gateway's database.
    path = tmp_path / "edited.png"
    path.write_bytes(response.content)
    runner = gateway.app.test_cli_runner()
    result = runner.invoke(main, ["labels", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert response.headers["Consent-Decision"] in result.output
    assert "withdrawn" in result.output
    assert "NOT all consents are still active" in result.output
    as_json = json.loads(runner.invoke(main, ["labels", "verify", "--json", str(path)]).output)
    assert as_json["decision"]["id"] == response.headers["Consent-Decision"]
    path.write_bytes(bytes(altered))
    result = runner.invoke(main, ["labels", "verify", str(path)])
    assert result.exit_code == 1
    assert "label_content_mismatch" in result.output


def _as_test_response(response: httpx.Response) -> Any:
    from werkzeug.test import TestResponse

    return TestResponse(response.content, status=response.status_code,
                        headers={"Content-Type": response.headers["content-type"]}, request=None)


def test_voice_output_comes_back_labelled_with_its_cue(gateway: Gateway, reference_upstream: str) -> None:
    response, _consent_id = gateway.edit("voice_clone", {"audio": ("me.wav", AUDIO, "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert verify_label(io.BytesIO(response.content), gateway.jwks(), issuer=gateway.url).container == "wav"
    with wave.open(io.BytesIO(response.content)) as edited, wave.open(io.BytesIO(AUDIO)) as original:
        assert edited.getnframes() == original.getnframes() + round(0.3 * original.getframerate())


def test_an_output_that_cannot_be_labelled_is_refused_with_a_failed_outcome(
    gateway: Gateway, served: Callable[[Any], Served]  # noqa: F811
) -> None:
    @Request.application
    def json_upstream(request: Request) -> Response:
        request.get_data()
        return Response(json.dumps({"edited": "base64…"}), content_type="application/json")

    register_algorithm(gateway.app, FILING, upstream_url=served(json_upstream).url + "/edit")
    response, _consent_id = gateway.edit("face_swap", {"source": ("a.png", SOURCE, "image/png")})

    assert response.status_code == 502
    problem = response.json()
    assert problem["code"] == "label_unsupported"
    decision_id = response.headers["Consent-Decision"]
    assert problem["decision_id"] == decision_id
    [failed] = audit_entries(gateway.app, "decision.failed")
    assert failed["decision_id"] == decision_id
    assert failed["reason"] == "label_unsupported"
    assert audit_entries(gateway.app, "decision.completed") == []
    assert list(gateway.upload_dir.iterdir()) == []


def _answering(video: bytes) -> Any:
    """An upstream that reads the upload and answers ``video``."""

    @Request.application
    def video_upstream(request: Request) -> Response:
        request.get_data()
        return Response(video, content_type="video/mp4")

    return video_upstream


def test_mp4_output_is_labelled_through_the_proxy(gateway: Gateway, served: Callable[[Any], Served]) -> None:  # noqa: F811
    register_algorithm(gateway.app, FILING, upstream_url=served(_answering(media.mp4())).url + "/edit")
    response, _consent_id = gateway.edit("face_swap", {"source": ("a.png", SOURCE, "image/png")})
    assert response.status_code == 200, response.text
    assert verify_label(io.BytesIO(response.content), gateway.jwks(), issuer=gateway.url).container == "mp4"
    [unmarked] = audit_entries(gateway.app, "output.unmarked")
    assert unmarked["reason"] == "mark_unsupported"
    [completed] = audit_entries(gateway.app, "decision.completed")
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_mp4_output_gets_the_visible_mark_through_the_proxy_where_configured(
    gateway_server: Callable[..., LiveServer], served: Callable[[Any], Served], tmp_path: Path  # noqa: F811
) -> None:
    upload_dir = tmp_path / "video-uploads"
    upload_dir.mkdir()
    gateway = Gateway(gateway_server(UPLOAD_DIR=str(upload_dir), UPSTREAM_TIMEOUT_SECONDS=5,
                                     LABEL_VIDEO_MARK_SECONDS=2), upload_dir)
    register_algorithm(gateway.app, FILING, upstream_url=served(_answering(media.clip(seconds=3))).url + "/edit")
    response, _consent_id = gateway.edit("face_swap", {"source": ("a.png", SOURCE, "image/png")})
    assert response.status_code == 200, response.text
    assert verify_label(io.BytesIO(response.content), gateway.jwks(), issuer=gateway.url).container == "mp4"
    assert audit_entries(gateway.app, "output.unmarked") == []
    [completed] = audit_entries(gateway.app, "decision.completed")
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(response.content)) as container:
        first = next(container.decode(video=0)).to_image().convert("L")
    corner = first.crop((first.width * 3 // 5, first.height * 4 // 5, first.width, first.height))
    assert corner.getextrema() == (pytest.approx(0, abs=60), pytest.approx(255, abs=55))  # dark box, white text
    assert list(upload_dir.iterdir()) == []


def test_the_demo_app_shows_the_verification_of_the_image_it_received(
    gateway: Gateway, reference_upstream: str
) -> None:
    demo = create_demo_app(gateway=gateway.url, client_id=gateway.edit_app.client_id,
                           client_secret=gateway.edit_app.secret, filing_number=FILING,
                           public_url="http://127.0.0.1:9")
    consent_id = make_consent(gateway.app, gateway.edit_app.client_id, operations=("face_attribute_edit",))
    page = demo.test_client().post("/edit", data={"consent_id": consent_id, "operation": "face_attribute_edit"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert "Label verified" in html
    assert consent_id in html
    assert "Reference Editor" in html
    assert "Every consent it was made under is still active." in html
