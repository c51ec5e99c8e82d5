"""Biometric binding end to end: a selfie on the consent screen, then edits of real photos through the proxy.

The gateway runs as a real HTTP server with face binding on (the product's default); people click
through the hosted consent screen with a test client; faces are real photos (tests/data/faces, several
people, two photos each); records are checked with PyJWT against the published JWKS.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import jwt
import pytest
from PIL import Image
from sqlalchemy import select, update

from consent.models import Consent
from gateway.biometrics import faces
from gateway.biometrics.models import BiometricTemplate
from gateway.cli import main
from gateway.core.clock import utcnow
from gateway.core.db import db
from tests.e2e.conftest import LiveServer
from tests.factories import PortalVisitor, audit_entries, consent_row, create_consent_request, register_algorithm
from tests.gateway.conftest import FILING, Served
from tests.gateway.demo.test_demo_upstream import AUDIO
from tests.gateway.proxy.test_edits import Capture, Stack

pytest.importorskip("dlib")

FACES = Path(__file__).parents[2] / "data" / "faces"
OBAMA_1, OBAMA_2, BIDEN_1, BIDEN_2, KIT = (
    (FACES / name).read_bytes()
    for name in ("obama_1.jpg", "obama_2.jpg", "biden_1.jpg", "biden_2.jpg", "kit_harington_1.jpg"))
TWO_PEOPLE = (FACES / "two_people_obama_and_biden.jpg").read_bytes()
OBAMA_VIDEO = (FACES / "obama_1_rotated.mp4").read_bytes()


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(out, "PNG")
    return out.getvalue()


NO_FACE = _png((40, 120, 200))


@pytest.fixture
def stack(gateway_server: Callable[..., LiveServer], tmp_path: Path) -> Stack:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return Stack(gateway_server(UPLOAD_DIR=str(upload_dir), UPSTREAM_TIMEOUT_SECONDS=5, BINDING_MODALITIES=("face",)),
                 upload_dir)


@pytest.fixture
def upstream(stack: Stack, served: Callable[[Any], Served]) -> Capture:
    from gateway.demo.upstream import create_demo_upstream

    capture = Capture(create_demo_upstream(issuer=stack.gateway.url, jwks=f"{stack.gateway.url}/.well-known/jwks.json",
                                           filing_number=FILING))
    register_algorithm(stack.gateway.app, FILING, upstream_url=f"{served(capture).url}/edit")
    return capture


def _grant(stack: Stack, contact: str, selfie: bytes, operations: tuple[str, ...] = ("face_swap",)) -> str:
    app = stack.gateway.app
    with app.test_client() as client:
        created = create_consent_request(client, stack.token, contact=contact, reference=None,
                                         operations=list(operations))
        visitor = PortalVisitor(app)
        response = visitor.grant(created["id"], list(operations), contact=contact, selfie=selfie)
        assert response.status_code in (200, 303), response.get_data(as_text=True)[:800]
    with app.app_context():
        consent_id = db.session.scalar(select(Consent.id).where(Consent.request_id == created["id"]))
    assert consent_id is not None
    return consent_id


def _edit(stack: Stack, consents: list[str], source: bytes, target: bytes,
          kinds: tuple[str, str] = ("image/jpeg", "image/jpeg")) -> httpx.Response:
    return stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": consents},
                      {"source": ("me.jpg", source, kinds[0]), "target": ("film.jpg", target, kinds[1])})


def _templates(stack: Stack) -> list[BiometricTemplate]:
    with stack.gateway.app.app_context():
        rows = list(db.session.scalars(select(BiometricTemplate)))
        db.session.expunge_all()  # read here, used after the context ends
        return rows


def test_the_consent_screen_asks_for_a_selfie_and_refuses_unusable_photos(stack: Stack) -> None:
    app = stack.gateway.app
    with app.test_client() as client:
        created = create_consent_request(client, stack.token, contact="alice@example.com", reference=None)
    visitor = PortalVisitor(app)
    visitor.prove(created["id"], "alice@example.com")
    page = visitor.page(f"/consent/{created['id']}")
    # A phone opens its front camera for this input, with no JavaScript.
    assert 'type="file"' in page
    assert 'name="selfie"' in page
    assert 'capture="user"' in page
    assert 'enctype="multipart/form-data"' in page

    missing = visitor.decide(created["id"], ["face_swap"])
    assert missing.status_code == 422
    assert "photo of your face" in missing.get_data(as_text=True)
    for photo, words in ((NO_FACE, "could not find a face"), (TWO_PEOPLE, "more than one face"),
                         (b"%PDF-1.4 not a photo", "not a photo we can read")):
        refused = visitor.decide(created["id"], ["face_swap"], selfie=photo)
        assert refused.status_code == 422, refused.get_data(as_text=True)[:500]
        assert words in refused.get_data(as_text=True)
    # Nothing was granted and no template kept from the refused photos; the person can still retry.
    assert _templates(stack) == []
    assert visitor.decide(created["id"], ["face_swap"], selfie=OBAMA_1).status_code in (200, 303)
    assert len(_templates(stack)) == 1


def test_a_refused_photo_keeps_the_ticked_operations_and_a_too_large_one_says_how_large(stack: Stack) -> None:
    app = stack.gateway.app
    with app.test_client() as client:
        created = create_consent_request(client, stack.token, contact="alice@example.com", reference=None,
                                         operations=["face_swap", "face_attribute_edit", "voice_clone"])
    visitor = PortalVisitor(app)
    visitor.prove(created["id"], "alice@example.com")
    refused = visitor.decide(created["id"], ["face_swap", "voice_clone"], selfie=NO_FACE)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    # Only the photo has to be chosen again: the boxes stay as the person ticked them.
    assert re.search(r'id="op-face_swap"[^>]* checked', page)
    assert re.search(r'id="op-voice_clone"[^>]* checked', page)
    assert not re.search(r'id="op-face_attribute_edit"[^>]* checked', page)

    # A photo past the limit: the notice again, saying how large a photo may be, not a bare error page.
    too_large = visitor.decide(created["id"], ["face_swap"], selfie=b"\xff\xd8\xff" + bytes(21 * 1024 * 1024))
    assert too_large.status_code == 413
    page = too_large.get_data(as_text=True)
    assert "larger than 20 MB" in page
    assert 'name="selfie"' in page
    assert _templates(stack) == []
    with app.app_context():
        assert db.session.scalar(select(Consent.id).where(Consent.request_id == created["id"])) is None
    assert visitor.decide(created["id"], ["face_swap"], selfie=OBAMA_1).status_code in (200, 303)


def test_the_record_names_the_template_it_was_granted_with(stack: Stack) -> None:
    consent_id = _grant(stack, "obama@example.com", OBAMA_1)
    [template] = _templates(stack)
    with stack.gateway.app.app_context():
        record = db.session.scalar(select(Consent.record).where(Consent.id == consent_id))
    assert record is not None
    jwks = httpx.get(f"{stack.gateway.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(record)["kid"]))
    claims = jwt.decode(record, key, algorithms=["EdDSA"], audience=stack.edit_app.client_id)
    assert claims["ver"] == 2
    assert claims["consent"]["evidence"]["face"] == {"model": faces.FACE_MODEL, "template_sha256": template.sha256}
    # Only the embedding is kept, sealed: neither the photo nor the plain template is in the row.
    assert OBAMA_1[:64] not in template.sealed
    assert len(template.sealed) < 2048
    [enrolled] = audit_entries(stack.gateway.app, "biometric.enrolled")
    assert enrolled["detail"]["template_sha256"] == template.sha256
    # The person's receipt says so in words (the digest, never the template).
    person = PortalVisitor(stack.gateway.app)
    person.sign_in("obama@example.com")
    receipt = person.page(f"/me/consents/{consent_id}/receipt.html")
    assert "Tied to your face" in receipt
    assert template.sha256[:16] in receipt
    # The app sees that the consent is bound, so it knows to send the media through POST /v1/edits.
    shown = httpx.get(f"{stack.gateway.url}/v1/consents/{consent_id}",
                      headers={"Authorization": f"Bearer {stack.token}"})
    assert shown.json()["binding"] == ["face"]


def test_decision_mode_cannot_use_a_bound_consent(stack: Stack, upstream: Capture) -> None:
    consent_id = _grant(stack, "obama@example.com", OBAMA_1)
    response = httpx.post(f"{stack.gateway.url}/v1/decisions", headers={"Authorization": f"Bearer {stack.token}"},
                          json={"operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
                                "media": [{"role": "source", "sha256": "ab" * 32}]})
    assert response.status_code == 403
    assert response.json()["reason"] == "binding_requires_media"
    assert consent_row(stack.gateway.app, consent_id) == ("active", 0)


def test_a_face_swap_needs_both_faces_to_belong_to_people_who_consented(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    biden = _grant(stack, "biden@example.com", BIDEN_1)

    allowed = _edit(stack, [obama, biden], OBAMA_2, BIDEN_2)
    assert allowed.status_code == 200, allowed.text
    [(headers, _body)] = upstream.requests
    ticket = jwt.decode(headers["Consent-Ticket"], options={"verify_signature": False})
    assert ticket["binding"] == "checked"

    # Another person's face, in either role, is refused before anything reaches the algorithm.
    for source, target, role in ((KIT, BIDEN_2, "source"), (OBAMA_2, KIT, "target")):
        denied = _edit(stack, [obama, biden], source, target)
        assert denied.status_code == 403, denied.text
        problem = denied.json()
        assert problem["reason"] == "biometric_mismatch"
        assert f"part '{role}'" in problem["detail"]
        assert "threshold" in problem["detail"]
    # A consent covers only its own subject: Biden's face is not Obama's, even with Obama's consent.
    assert _edit(stack, [obama], OBAMA_2, BIDEN_2).json()["reason"] == "biometric_mismatch"
    # Two faces in one image where one person did not consent.
    assert _edit(stack, [obama], OBAMA_2, TWO_PEOPLE).json()["reason"] == "biometric_mismatch"
    assert len(upstream.requests) == 1
    # Denials took no use, and each is audited with the distance and threshold (never a template).
    assert consent_row(stack.gateway.app, obama)[1] == 1
    denials = audit_entries(stack.gateway.app, "decision.denied")
    assert [d["reason"] for d in denials] == ["biometric_mismatch"] * 4
    assert all("nearest distance" in d["detail"] for d in denials)


def test_media_without_a_face_are_refused_for_a_face_operation(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    denied = _edit(stack, [obama], NO_FACE, NO_FACE, ("image/png", "image/png"))
    assert denied.status_code == 403
    assert denied.json()["reason"] == "no_face_found"
    # Bytes that claim to be an image but are not one show no face either: refused, not waved through.
    lying = _edit(stack, [obama], b"\x00" * 4096, b"GIF89a but not really", ("image/jpeg", "image/gif"))
    assert lying.json()["reason"] == "no_face_found"
    # Each picture must show someone: a matching source does not carry a faceless target through, in
    # either order (in a swap, a target whose face the detector misses would go unchecked).
    for source, target, faceless in ((OBAMA_2, NO_FACE, "target"), (NO_FACE, OBAMA_2, "source")):
        denied = _edit(stack, [obama], source, target, ("image/png", "image/png"))
        assert denied.status_code == 403
        assert denied.json()["reason"] == "no_face_found"
        assert f"part '{faceless}'" in denied.json()["detail"]
    # A face swap edits pictures: a sound in place of the target is no part of it.
    wrong = _edit(stack, [obama], OBAMA_2, AUDIO, ("image/jpeg", "audio/wav"))
    assert wrong.json()["reason"] == "media_not_covered"
    assert upstream.requests == []
    assert consent_row(stack.gateway.app, obama)[1] == 0


def _video(photo: bytes, width: int) -> bytes:
    """A one-second H.264 clip of ``photo`` at ``width`` pixels (PyAV, FFmpeg inside the wheel)."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    height = round(image.height * width / image.width / 2) * 2
    frame_image = image.resize((width, height))
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(10):
            container.mux(stream.encode(av.VideoFrame.from_image(frame_image)))
        container.mux(stream.encode())
    return out.getvalue()


@pytest.mark.parametrize("width", [640, 648, 334])
def test_video_frames_of_any_width_are_checked(stack: Stack, upstream: Capture, width: int) -> None:
    # Widths whose rows FFmpeg pads (648, 334) gave dlib a strided array, and the edit a 500.
    obama = _grant(stack, "obama@example.com", OBAMA_1, ("face_attribute_edit",))
    biden = _grant(stack, "biden@example.com", BIDEN_1, ("face_attribute_edit",))
    clip = _video(OBAMA_2, width)
    allowed = stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [obama]},
                         {"target": ("clip.mp4", clip, "video/mp4")})
    assert allowed.status_code != 403, allowed.text
    assert allowed.status_code < 500 or allowed.json()["code"].startswith("upstream_"), allowed.text
    denied = stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [biden]},
                        {"target": ("clip.mp4", clip, "video/mp4")})
    assert denied.status_code == 403
    assert denied.json()["reason"] == "biometric_mismatch"


def test_faces_in_sampled_video_frames_are_checked(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    biden = _grant(stack, "biden@example.com", BIDEN_1)
    # Allowed and forwarded (the demo algorithm edits stills only, so what comes back is its own refusal).
    assert _edit(stack, [obama], OBAMA_2, OBAMA_VIDEO, ("image/jpeg", "video/mp4")).status_code != 403
    assert len(audit_entries(stack.gateway.app, "decision.allowed")) == 1
    assert len(upstream.requests) == 1
    denied = _edit(stack, [biden], BIDEN_2, OBAMA_VIDEO, ("image/jpeg", "video/mp4"))
    assert denied.json()["reason"] == "biometric_mismatch"
    assert "frame at" in denied.json()["detail"]


def test_withdrawal_deletes_the_template_and_says_so(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    [template] = _templates(stack)
    visitor = PortalVisitor(stack.gateway.app)
    visitor.sign_in("obama@example.com")
    response = visitor.post(f"/me/consents/{obama}/withdraw", {}, f"/me/consents/{obama}/withdraw")
    assert response.status_code == 303
    assert _templates(stack) == []
    [deleted] = audit_entries(stack.gateway.app, "biometric.deleted")
    assert deleted["detail"]["template_sha256"] == template.sha256
    assert _edit(stack, [obama], OBAMA_2, OBAMA_2).json()["reason"] == "consent_withdrawn"


def test_a_person_deletes_their_templates_on_me_after_being_told_what_ends(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    visitor = PortalVisitor(stack.gateway.app)
    visitor.sign_in("obama@example.com")
    me = visitor.page("/me")
    assert 'id="delete-templates"' in me
    confirm = visitor.page("/me/templates/delete")
    for listing in (me, confirm):
        # The time the template was made is a <time> element, not its escaped markup.
        assert "&lt;time" not in listing
        assert re.search(r'template, made <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', listing)
    assert "also ends these consents" in confirm
    assert "Face swap" in confirm
    assert consent_row(stack.gateway.app, obama)[0] == "active"  # nothing happens before confirming
    response = visitor.post("/me/templates/delete", {}, "/me/templates/delete")
    assert response.status_code == 303
    assert consent_row(stack.gateway.app, obama)[0] == "withdrawn"
    assert _templates(stack) == []
    assert "We keep no template" in visitor.page("/me")
    # Back to the confirmation, or the form sent again: nothing to delete, and no claim that something was.
    again = visitor.client.get("/me/templates/delete")
    assert again.status_code == 303
    assert again.headers["Location"] == "/me#templates"
    resent = visitor.post("/me/templates/delete", {}, "/me")
    assert resent.headers["Location"] == "/me"


def test_without_the_face_models_nothing_that_needs_binding_is_allowed(
        stack: Stack, upstream: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    # As if the [face] extra were not installed: importing dlib fails from here on.
    monkeypatch.setitem(sys.modules, "dlib", None)
    faces._engine.cache_clear()
    try:
        response = _edit(stack, [obama], OBAMA_2, OBAMA_2)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "binding_unavailable"
        assert upstream.requests == []
        assert consent_row(stack.gateway.app, obama) == ("active", 0)

        app = stack.gateway.app
        with app.test_client() as client:
            created = create_consent_request(client, stack.token, contact="kit@example.com", reference=None)
        visitor = PortalVisitor(app)
        visitor.prove(created["id"], "kit@example.com")
        refused = visitor.decide(created["id"], ["face_swap"], selfie=KIT)
        assert refused.status_code == 503
        assert "unavailable" in refused.get_data(as_text=True)
    finally:
        faces._engine.cache_clear()


def test_the_sweep_deletes_the_template_of_an_expired_consent(stack: Stack) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    app = stack.gateway.app
    with app.app_context():
        db.session.execute(update(Consent).where(Consent.id == obama).values(expires_at=utcnow()))
        db.session.commit()
    # As `consent-gateway consents sweep` runs it (from cron).
    result = app.test_cli_runner().invoke(main, ["consents", "sweep", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["templates_deleted"] == 1
    assert _templates(stack) == []
    [deleted] = audit_entries(app, "biometric.deleted")
    assert deleted["actor"]["type"] == "system"


def test_a_consent_cannot_borrow_another_persons_template(stack: Stack, upstream: Capture) -> None:
    obama = _grant(stack, "obama@example.com", OBAMA_1)
    biden = _grant(stack, "biden@example.com", BIDEN_1)
    app = stack.gateway.app
    with app.app_context():
        obama_digest = db.session.scalar(select(Consent.bindings).where(Consent.id == obama))["face"]
        # As if a row were edited behind the gateway's back: Biden's consent names Obama's template.
        db.session.execute(update(Consent).where(Consent.id == biden).values(bindings={"face": obama_digest}))
        db.session.commit()
    denied = _edit(stack, [biden], OBAMA_2, OBAMA_2)
    assert denied.status_code == 403
    assert denied.json()["reason"] == "biometric_not_enrolled"
    assert upstream.requests == []
