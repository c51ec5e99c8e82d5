"""Fixtures for the hostile-input tests: apps with narrow and wide tokens, a live proxy stack."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from gateway import create_app
from gateway.core.db import db
from gateway.demo.upstream import create_demo_upstream
from tests.conftest import app_config, init_keys
from tests.e2e.conftest import LiveServer, start_server
from tests.factories import App, make_app_client, make_consent, register_algorithm

FILING = "FN-SEC-0001"


@dataclass
class ProxyStack:
    """The gateway and the reference upstream on real sockets, with one app allowed to edit."""

    gateway: LiveServer
    upstream_url: str
    edit_app: App
    token: str

    def consent(self, **terms: Any) -> str:
        return make_consent(self.gateway.app, self.edit_app.client_id, **terms)

    def edit(self, request: dict[str, Any], files: dict[str, tuple[str, bytes, str]]) -> httpx.Response:
        return httpx.post(f"{self.gateway.url}/v1/edits", headers={"Authorization": f"Bearer {self.token}"},
                          files={"request": (None, json.dumps(request), "application/json"), **files},
                          timeout=120)


@pytest.fixture
def proxy_stack(database_url: str, tmp_path: Path) -> Iterator[ProxyStack]:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    gateway = start_server(create_app(app_config(database_url, tmp_path, UPLOAD_DIR=str(uploads))))
    gateway.app.config["ISSUER"] = gateway.url
    gateway.app.instance_path = str(tmp_path / "instance")
    init_keys(gateway.app)
    upstream_app = create_demo_upstream(issuer=gateway.url, jwks=f"{gateway.url}/.well-known/jwks.json",
                                        filing_number=FILING)
    upstream = make_server("127.0.0.1", 0, upstream_app, threaded=True)
    threading.Thread(target=upstream.serve_forever, name="demo-upstream", daemon=True).start()
    upstream_url = f"http://127.0.0.1:{upstream.server_port}"
    register_algorithm(gateway.app, FILING, operations=("face_swap", "face_attribute_edit"),
                       upstream_url=f"{upstream_url}/edit")
    edit_app = make_app_client(gateway.app, scope="edit:face", name="Edit App")
    token = httpx.post(f"{gateway.url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]
    yield ProxyStack(gateway, upstream_url, edit_app, token)
    upstream.shutdown()
    upstream.server_close()
    gateway.stop()
    with gateway.app.app_context():
        db.engine.dispose()
