"""Real HTTP servers for end-to-end tests: werkzeug's threaded server on a loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from gateway import create_app
from tests.conftest import app_config, init_keys


@dataclass
class LiveServer:
    app: Flask
    url: str
    server: BaseWSGIServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_server(app: Flask) -> LiveServer:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    return LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}", server=server)


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """The gateway on a real socket; ISSUER is its own URL so links and records point back at it."""
    server = start_server(create_app(app_config(database_url, tmp_path)))
    server.app.config["ISSUER"] = server.url
    server.app.instance_path = str(tmp_path / "instance")
    init_keys(server.app)
    yield server
    server.stop()
