"""Fixtures for the white list, decisions and the edit proxy: apps, algorithms, real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from gateway import create_app
from tests.conftest import ISSUER, MASTER_KEY, app_config, init_keys
from tests.e2e.conftest import LiveServer, live_server, start_server  # noqa: F401 - fixture re-export
from tests.factories import App, make_app_client, register_algorithm, token_for

FILING = "FN-TEST-0001"


@pytest.fixture
def edit_app(app: Flask) -> App:
    return make_app_client(app, name="Edit App")


@pytest.fixture
def token(client: FlaskClient, edit_app: App) -> str:
    return token_for(client, edit_app)


@pytest.fixture
def algorithm(app: Flask) -> str:
    return register_algorithm(app, FILING)


@dataclass
class Served:
    """A WSGI app on a loopback port, in a thread of this process."""

    url: str
    server: BaseWSGIServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(wsgi_app: Any) -> Served:
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    threading.Thread(target=server.serve_forever, name="test-upstream", daemon=True).start()
    return Served(url=f"http://127.0.0.1:{server.server_port}", server=server)


@pytest.fixture
def served() -> Iterator[Callable[[Any], Served]]:
    started: list[Served] = []

    def start(wsgi_app: Any) -> Served:
        started.append(serve(wsgi_app))
        return started[-1]

    yield start
    for item in started:
        item.stop()


@pytest.fixture
def gateway_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start the gateway on a real socket with extra configuration (e.g. a short upstream timeout)."""
    started: list[LiveServer] = []

    def start(**config: Any) -> LiveServer:
        server = start_server(create_app(app_config(database_url, tmp_path, **config)))
        server.app.config["ISSUER"] = server.url
        server.app.instance_path = str(tmp_path / "instance")
        init_keys(server.app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Gunicorn:
    """``consent-gateway serve`` (gunicorn, the production server) in a subprocess."""

    url: str
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def peak_rss_kib(self) -> dict[int, int]:
        """VmHWM (peak resident set) of every worker, in KiB."""
        peaks = {}
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1])
        return peaks


@contextmanager
def gunicorn_gateway(database_url: str, tmp_path: Path, *, workers: int = 1, **config: Any) -> Iterator[Gunicorn]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CONSENT_GATEWAY_DATABASE_URL": database_url,
        "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
        "CONSENT_GATEWAY_ISSUER": url,
        "CONSENT_GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
        "CONSENT_GATEWAY_LOG_LEVEL": "WARNING",
        **{f"CONSENT_GATEWAY_{key}": str(value) for key, value in config.items()},
    }
    log = (tmp_path / f"gunicorn-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "consent-gateway"), "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        server = Gunicorn(url=url, process=process)
        _wait_until_up(server, workers)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_until_up(server: Gunicorn, workers: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}")
        try:
            if (httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
                    and len(server.worker_pids()) == workers):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a process starting up; there is nothing to wait on but the socket
    raise RuntimeError("gunicorn did not start within 30 s")


__all__ = ["FILING", "ISSUER", "Gunicorn", "Served", "free_port", "gunicorn_gateway", "serve"]
