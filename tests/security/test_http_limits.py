"""Hostile HTTP against the production server (``consent-gateway serve``: gunicorn, gthread).

Oversized and malformed requests are refused by gunicorn before the app runs; slow-loris clients are
cut off by the deadlines of gateway/core/server.py. Before those deadlines existed, six connections
sending a byte a second held every thread of a one-worker server and /healthz stopped answering.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from gateway import create_app
from gateway.core.db import db
from tests.conftest import app_config, fresh_database
from tests.e2e.cluster import GatewayProcess, cli, cluster_env, gateway_process
from tests.factories import make_app_client, make_consent, register_algorithm

pytestmark = pytest.mark.e2e

HEADER_SECONDS = 1
BODY_SECONDS = 1
THREADS = 4  # gateway.core.server.run's default, one worker: six slow clients outnumber the threads


@dataclass
class Limited:
    server: GatewayProcess
    database_url: str
    workdir: Path


@pytest.fixture(scope="module")
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    tmp_path = tmp_path_factory.mktemp("limits")
    url = next(fresh_database("sqlite", request, tmp_path))
    # The slow upstream answers a few bytes that are no image: passed unlabelled (audited), as configured.
    env = cluster_env(url, tmp_path / "outbox", LABEL_UNSUPPORTED="pass", HEADER_TIMEOUT_SECONDS=HEADER_SECONDS,
                      BODY_TIMEOUT_SECONDS=BODY_SECONDS)
    cli(env, "init")
    with gateway_process(env, tmp_path, workers=1) as process:
        yield Limited(process, url, tmp_path)


@pytest.fixture
def server(limited: Limited) -> GatewayProcess:
    return limited.server


def _exchange(server: GatewayProcess, raw: bytes) -> bytes:
    """Send raw bytes, return the status line of the answer."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        return conn.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", b"431"),
    (b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
    # Header injection on the wire: a bare CR or LF inside a value, an obsolete folded line.
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: session=x\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\nSet-Cookie: session=x\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n Set-Cookie: session=x\r\n\r\n", b"400"),
    # Request smuggling: both framings at once.
    (b"POST /v1/consents/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", b"400"),
], ids=["header-too-large", "too-many-headers", "uri-too-long", "bare-cr", "bare-lf", "obs-fold", "cl-and-te"])
def test_malformed_and_oversized_requests_are_refused_before_the_app(server: GatewayProcess, raw: bytes,
                                                                      status: bytes) -> None:
    assert _exchange(server, raw).split(b" ")[1] == status
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


class SlowClient:
    """One connection that sends ``head`` and then a byte every ``interval`` seconds until cut off."""

    def __init__(self, server: GatewayProcess, head: bytes, drip: bytes, interval: float = 0.2) -> None:
        port = int(server.url.rsplit(":", 1)[1])
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.conn.sendall(head)
        self.started = time.monotonic()
        self.cut_after: float | None = None
        self.answer = b""
        self._drip, self._interval = drip, interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while time.monotonic() - self.started < 20:  # bounded: the test fails long before
                self.conn.sendall(self._drip)
                time.sleep(self._interval)  # the attack's own rhythm, not test ordering
        except OSError:
            pass

    def wait_for_answer(self) -> None:
        # Until the server closes the connection (it does after a cut: the read side is shut).
        chunks = []
        try:
            while chunk := self.conn.recv(4096):
                chunks.append(chunk)
        except OSError:
            pass
        self.answer = b"".join(chunks)
        self.cut_after = time.monotonic() - self.started
        self.conn.close()
        self._thread.join(timeout=5)


def _healthz_while(server: GatewayProcess, slow: list[SlowClient]) -> None:
    """An ordinary request, sent while the slow clients hold more connections than there are threads,
    is answered within about one deadline (it waits at most for the first cut-off thread)."""
    started = time.monotonic()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert time.monotonic() - started < max(HEADER_SECONDS, BODY_SECONDS) + 2
    for client in slow:
        client.wait_for_answer()


def test_slow_headers_are_cut_and_the_server_keeps_answering(server: GatewayProcess) -> None:
    slow = [SlowClient(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X") for _ in range(THREADS + 2)]
    _healthz_while(server, slow)
    for client in slow:
        assert client.answer == b""  # the connection was closed, no request was ever handled
        assert client.cut_after is not None
        assert client.cut_after < HEADER_SECONDS + 3


def test_slow_bodies_get_408_and_the_server_keeps_answering(server: GatewayProcess) -> None:
    head = (b"POST /v1/consents/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{")
    slow = [SlowClient(server, head, b" ") for _ in range(THREADS + 2)]
    _healthz_while(server, slow)
    for client in slow:
        assert client.answer.startswith(b"HTTP/1.1 408"), client.answer[:200]
        assert b'"code": "request_timeout"' in client.answer
        assert client.cut_after is not None
        assert client.cut_after < BODY_SECONDS + 3


def test_a_slow_view_after_a_quick_body_is_not_cut(limited: Limited) -> None:
    """The body deadline ends once the body is in: an edit whose upstream takes longer than the body
    deadline still gets its answer (it is the upstream timeout that bounds that wait)."""
    edit_seconds = BODY_SECONDS + 1.5

    def slow_upstream(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        time.sleep(edit_seconds)  # stands in for an edit that takes its time
        start_response("200 OK", [("Content-Type", "image/png")])
        return [b"edited"]

    upstream = make_server("127.0.0.1", 0, slow_upstream, threaded=True)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    app = create_app(app_config(limited.database_url, limited.workdir))
    try:
        register_algorithm(app, "FN-SLOW-0001", upstream_url=f"http://127.0.0.1:{upstream.server_port}/edit")
        editor = make_app_client(app, scope="edit:face")
        consent_id = make_consent(app, editor.client_id)
        server = limited.server
        token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                           auth=(editor.client_id, editor.secret), timeout=10).json()["access_token"]
        started = time.monotonic()
        response = httpx.post(f"{server.url}/v1/edits", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                              files={"request": (None, json.dumps({"operation": "face_swap",
                                                                   "algorithm": "FN-SLOW-0001",
                                                                   "consents": [consent_id]}), "application/json"),
                                     "source": ("me.png", b"\x89PNG" + bytes(4096), "image/png")})
        assert response.status_code == 200, response.text
        assert response.content == b"edited"
        assert time.monotonic() - started >= edit_seconds
    finally:
        upstream.shutdown()
        upstream.server_close()
        with app.app_context():
            db.engine.dispose()


def _chunked(body: bytes) -> Iterator[bytes]:
    # A generator makes httpx send Transfer-Encoding: chunked, with no Content-Length to refuse early.
    for start in range(0, len(body), 65536):
        yield body[start:start + 65536]


def test_a_chunked_json_body_past_the_limit_is_refused_not_cut(server: GatewayProcess) -> None:
    # Valid JSON up to the first MiB, then whitespace: cut at the limit it would still parse.
    record = json.dumps({"record": "not.a.record"}).encode()
    oversized = record + b" " * (2 * 1024 * 1024)
    response = httpx.post(f"{server.url}/v1/consents/verify", content=_chunked(oversized), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"

    # The same body inside the limit is read whole and answered as usual.
    fits = record + b" " * (512 * 1024)
    response = httpx.post(f"{server.url}/v1/consents/verify", content=_chunked(fits), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is False
