"""A 100 MB upload through the production server: the gateway's memory must not grow with the file."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.wrappers import Request, Response

from tests.factories import audit_entries, make_app_client, make_consent, register_algorithm
from tests.gateway.conftest import FILING, Served, gunicorn_gateway

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@Request.application
def sink(request: Request) -> Response:
    """An upstream that reads the whole body in chunks and says how much it got."""
    digest, size = hashlib.sha256(), 0
    while chunk := request.stream.read(MiB):
        digest.update(chunk)
        size += len(chunk)
    return Response(json.dumps({"received": size, "sha256": digest.hexdigest()}), content_type="application/json")


def _silence(path: Path, size: int) -> Path:
    """A WAV file of ``size`` bytes of silence: real audio (the gateway reads what a part is from its
    bytes), mostly a hole that takes no disk space and is never held in this process's memory either."""
    data = size - 44
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)  # PCM, mono, 16 kHz, 16 bit
    header = b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", data)
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(size)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_100_mb_upload_does_not_grow_the_gateways_memory(
    app: Flask, database_url: str, tmp_path: Path, served: Callable[[Any], Served]
) -> None:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    register_algorithm(app, FILING, upstream_url=served(sink).url + "/edit")
    edit_app = make_app_client(app, name="Big Upload App")
    consent_id = make_consent(app, edit_app.client_id, operations=("voice_clone",))
    request_part = json.dumps({"operation": "voice_clone", "algorithm": FILING, "consents": [consent_id]})

    # The sink answers JSON, which no label fits: let it through unlabelled (audited) for this memory test.
    with gunicorn_gateway(database_url, tmp_path, workers=1, UPLOAD_DIR=upload_dir, MAX_UPLOAD_MB=200,
                          LABEL_UNSUPPORTED="pass") as server:
        token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]

        def edit(path: Path) -> httpx.Response:
            with path.open("rb") as media:
                return httpx.post(f"{server.url}/v1/edits", headers={"Authorization": f"Bearer {token}"},
                                  files={"request": (None, request_part, "application/json"),
                                         "audio": ("speech.wav", media, "audio/wav")},
                                  timeout=300)

        # Warm up every code path with a small upload, then read the worker's peak RSS.
        warm = edit(_silence(tmp_path / "small.wav", 1 * MiB))
        assert warm.status_code == 200, warm.text
        [before] = server.peak_rss_kib().values()

        big = _silence(tmp_path / "big.wav", 100 * MiB)
        response = edit(big)
        assert response.status_code == 200, response.text
        [after] = server.peak_rss_kib().values()

    assert response.json()["received"] > 100 * MiB  # the multipart body the upstream streamed in
    growth_mib = (after - before) / 1024
    print(f"gateway worker peak RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after a 100 MiB "
          f"upload (+{growth_mib:.1f} MiB)")
    # Allocator noise moves the peak by a few MiB; holding the file would move it by 100.
    assert growth_mib < 20, f"peak RSS grew by {growth_mib:.1f} MiB for a 100 MiB upload"
    allowed = [e for e in audit_entries(app, "decision.allowed") if e["media"]["audio"] == _sha256(big)]
    assert len(allowed) == 1
    assert len(audit_entries(app, "decision.completed")) == 2
    assert list(upload_dir.iterdir()) == []
