"""Active liveness on the consent screen (BINDING_FACE_LIVENESS): the selfie is a video answering the page's turns.

The videos are made from real photos of one person in different poses (tests/gateway/biometrics/
test_liveness.py says why this is a plumbing test: the head jumps between poses, and the yaw threshold is
lowered to the test photos' 20 degree turns).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from consent.models import Consent
from gateway import create_app
from gateway.biometrics.models import BiometricTemplate
from gateway.core.db import db
from tests.conftest import app_config, init_keys
from tests.factories import PortalVisitor, audit_entries, create_consent_request, make_app_client, token_for

pytest.importorskip("dlib")
pytest.importorskip("av")

from tests.gateway.biometrics.test_liveness import PLUMBING, clip, head, poses

WORDS = {"to your left": "left", "to your right": "right"}


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    application = create_app(app_config(database_url, tmp_path, BINDING_MODALITIES=("face",),
                                        BINDING_FACE_LIVENESS=True, BINDING_LIVENESS_YAW=PLUMBING))
    init_keys(application)
    return application


def _open(app: Flask) -> tuple[PortalVisitor, str, tuple[str, ...]]:
    with app.test_client() as client:
        token = token_for(client, make_app_client(app))
        created = create_consent_request(client, token, contact="obama@example.com", reference=None)
    visitor = PortalVisitor(app)
    visitor.prove(created["id"], "obama@example.com")
    page = visitor.page(f"/consent/{created['id']}")
    assert 'name="selfie_video"' in page
    assert 'accept="video/*"' in page
    assert 'capture="user"' in page
    said = re.search(r'id="challenge">([^<]*)<', page)
    assert said is not None
    turns = tuple(WORDS[words] for words in re.findall(r"to your (?:left|right)", said.group(1)))
    assert len(turns) == 3
    return visitor, created["id"], turns


def _approve(visitor: PortalVisitor, request_id: str, video: bytes) -> Any:
    html = visitor.page(f"/consent/{request_id}")
    return visitor.client.post(f"/consent/{request_id}/decision", data={
        "csrf_token": visitor.field(html, "csrf_token"), "notice_sha256": visitor.field(html, "notice_sha256"),
        "locale": visitor.field(html, "locale"), "operations": ["face_swap"], "action": "approve",
        "selfie_video": (io.BytesIO(video), "selfie.mp4", "video/mp4")})


def _templates(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(BiometricTemplate.sha256)))


def test_the_turns_the_page_asked_for_enrol_the_face(app: Flask) -> None:
    visitor, request_id, turns = _open(app)
    # The same challenge on every view of the page, until the person starts over.
    assert _open_again(visitor, request_id) == turns
    response = _approve(visitor, request_id, clip(poses(turns)).getvalue())
    assert response.status_code in (200, 303)
    [digest] = _templates(app)
    with app.app_context():
        bindings = db.session.scalar(select(Consent.bindings).where(Consent.request_id == request_id))
    assert bindings == {"face": digest}
    [enrolled] = audit_entries(app, "biometric.enrolled")
    assert enrolled["detail"]["liveness"] == {"challenge": list(turns), "turns": list(turns)}


def test_a_still_photo_or_the_wrong_turns_are_refused_and_nothing_is_kept(app: Flask) -> None:
    visitor, request_id, turns = _open(app)
    still = _approve(visitor, request_id, clip([head("obama_1")] * 6).getvalue())
    assert still.status_code == 422
    assert "did not turn as asked" in still.get_data(as_text=True)
    wrong = tuple("left" if turn == "right" else "right" for turn in turns)
    assert _approve(visitor, request_id, clip(poses(wrong)).getvalue()).status_code == 422
    photo_instead = _approve(visitor, request_id, b"\xff\xd8\xff not a video")
    assert photo_instead.status_code == 422
    assert _templates(app) == []


def _open_again(visitor: PortalVisitor, request_id: str) -> tuple[str, ...]:
    said = re.search(r'id="challenge">([^<]*)<', visitor.page(f"/consent/{request_id}"))
    assert said is not None
    return tuple(WORDS[words] for words in re.findall(r"to your (?:left|right)", said.group(1)))
