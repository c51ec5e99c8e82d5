"""Labelling without HTTP: the proxy's transform applied to real files, and the gateway's own JWKS."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway import create_app
from gateway.core.db import db
from gateway.keys.keyring import key_store
from gateway.keys.store import jwks
from gateway.labels import transform
from gateway.proxy import upstream
from tests.conftest import ISSUER, app_config, init_keys
from tests.gateway.labels import media

CONTEXT = upstream.EditContext(decision_id="dec_LabelTestDecision00000001", client_id="cli_LabelTestApp",
                               operation="face_swap", algorithm="FN-LABEL-0001",
                               consents=("cns_LabelTestConsent000000001",), media={})

# name -> (maker, container read back)
MEDIA: dict[str, tuple[Callable[[], bytes], str]] = {
    "png": (media.png, "png"),
    "jpeg": (media.jpeg, "jpeg"),
    "wav": (media.wav, "wav"),
    "mp3": (media.mp3, "mp3"),
    "m4a": (media.m4a, "mp4"),
    "mp4": (media.mp4, "mp4"),
}


def label_with(app: Flask, data: bytes, context: upstream.EditContext = CONTEXT, *, chunk: int = 7,
               content_type: str = "application/octet-stream") -> bytes:
    """What the app gets when the upstream answers ``data`` (in small chunks, as a stream would)."""
    with app.test_request_context():
        output = transform.label_output(context, upstream.Output(
            content_type=content_type, chunks=[data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]))
        return b"".join(output.chunks)


def gateway_jwks(app: Flask) -> dict[str, Any]:
    with app.app_context(), db.unit_of_work() as session:
        return jwks(key_store().all(session))


@pytest.fixture
def configured(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """A gateway app with extra configuration (the label policy is read once, when the app is made)."""
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = create_app(app_config(database_url, tmp_path, **config))
        app.instance_path = str(tmp_path / "instance")
        init_keys(app)
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


def exiftool(path: str) -> dict[str, Any]:
    """Every tag exiftool reads from ``path``, by group:name (the independent reader)."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: apt-get install -y libimage-exiftool-perl)")
    found = subprocess.run(["exiftool", "-j", "-G1", "-a", "-struct", path], capture_output=True, check=True)
    tags: dict[str, Any] = json.loads(found.stdout)[0]
    return tags


__all__ = ["CONTEXT", "ISSUER", "MEDIA", "exiftool", "gateway_jwks", "label_with"]
