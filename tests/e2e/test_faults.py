"""Faults that a test can stage reliably: the upload folder's disk is full; the gateway cannot serve the
reference upstream its keys.

(kill -9 of gateway processes: tests/gateway/auditing/test_crash.py; a hanging or closed upstream:
tests/gateway/proxy/test_edits.py; all of them, and a PostgreSQL restart, under load: bench/faults.py.)
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask
from PIL import Image

from gateway import create_app
from gateway.demo.upstream import CachedJwks
from tests.conftest import app_config, init_keys
from tests.factories import (
    audit_entries,
    bearer,
    consent_row,
    make_app_client,
    make_consent,
    register_algorithm,
    token_for,
)

QUOTA = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: the upload folder's whole disk."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={QUOTA}", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def proxy(database_url: str, tmp_path: Path, small_disk: Path) -> Iterator[Flask]:
    application = create_app(app_config(database_url, tmp_path, UPLOAD_DIR=str(small_disk)))
    application.instance_path = str(tmp_path / "instance")
    init_keys(application)
    register_algorithm(application, "FN-DISK-0001", upstream_url="http://127.0.0.1:9/edit")
    yield application
    from gateway.core.db import db

    with application.app_context():
        db.engine.dispose()


def _png(size: int) -> bytes:
    """A real PNG of ``size`` bytes (noise after its end), so the gateway reads it as the image it is."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 80, 40)).save(out, "PNG")
    return out.getvalue() + os.urandom(size - out.tell())


def _edit(app: Flask, token: str, consent_id: str, size: int) -> tuple[int, dict[str, object]]:
    response = app.test_client().post("/v1/edits", headers=bearer(token), content_type="multipart/form-data", data={
        "request": json.dumps({"operation": "face_swap", "algorithm": "FN-DISK-0001", "consents": [consent_id]}),
        "source": (io.BytesIO(_png(size)), "me.png", "image/png")})
    return response.status_code, response.get_json()


def test_a_full_upload_disk_refuses_with_507_decides_nothing_and_recovers(proxy: Flask, small_disk: Path) -> None:
    client = make_app_client(proxy, scope="edit:face")
    token = token_for(proxy.test_client(), client)
    consent_id = make_consent(proxy, client.client_id)

    status, body = _edit(proxy, token, consent_id, 2 * QUOTA)  # more than the disk holds
    assert status == 507, body
    assert body["code"] == "insufficient_storage"
    assert consent_row(proxy, consent_id) == ("active", 0)  # nothing decided, no use taken
    assert audit_entries(proxy, "decision.allowed") == []
    assert list(small_disk.iterdir()) == []  # the part-written file is gone with its descriptor
    assert os.statvfs(small_disk).f_bfree == os.statvfs(small_disk).f_blocks

    # Room again (the file above was freed): the next edit is decided and reaches the (absent) upstream.
    status, body = _edit(proxy, token, consent_id, 64 * 1024)
    assert status == 502, body
    assert body["code"] == "upstream_unreachable"
    assert consent_row(proxy, consent_id) == ("active", 1)


def _jwks_source(answers: list[bool], calls: list[float], clock: list[float]) -> httpx.Client:
    """The gateway's JWKS URL as the network delivers it: each call answers (True) or times out."""

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(clock[0])
        if answers.pop(0) if answers else True:
            return httpx.Response(200, json={"keys": []})
        raise httpx.ReadTimeout("the gateway is too busy to answer", request=request)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_a_failed_jwks_refresh_keeps_the_keys_and_backs_off() -> None:
    """Under load the gateway's threads may all wait on the upstream, which then cannot refresh its
    keys from the gateway: it must keep editing with the keys it has, not refuse every edit."""
    calls: list[float] = []
    clock = [0.0]
    keys = CachedJwks("http://gw.example/.well-known/jwks.json", ttl=300, min_refresh=10,
                      client=_jwks_source([True, False], calls, clock), clock=lambda: clock[0])
    assert keys() == {"keys": []}
    clock[0] = 300.0
    assert keys() == {"keys": []}  # the refresh failed: the old keys, no exception
    assert keys() == {"keys": []}  # and no second attempt at once
    assert calls == [0.0, 300.0]
    clock[0] = 310.0
    keys()
    assert calls == [0.0, 300.0, 310.0]


def test_the_first_fetch_happens_before_any_edit() -> None:
    calls: list[float] = []
    keys = CachedJwks("http://gw.example/.well-known/jwks.json",
                      client=_jwks_source([False, False, True], calls, [0.0]))
    keys.warm(retry_every=0.01).join(timeout=10)
    assert len(calls) == 3
    assert keys() == {"keys": []}
    assert len(calls) == 3  # an edit now finds the keys without fetching
