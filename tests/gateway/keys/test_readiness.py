"""Fail closed when the database is unreachable: never a 200 from a protected endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway import create_app
from tests.conftest import app_config

UNREACHABLE = [
    "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "sqlite:////nonexistent-dir/for/sure/gateway.sqlite3",
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_database_unreachable_readyz_and_protected_are_503(url: str, tmp_path: Path) -> None:
    app = create_app(app_config(url, tmp_path))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"].startswith("unavailable")
    protected = client.get("/v1/keys", headers={"Authorization": "Bearer anything"})
    assert protected.status_code == 503
    assert protected.get_json()["code"] == "database_unavailable"
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": "Basic Y2xpX3g6eQ=="})
    assert token.status_code == 503


def test_ready_when_database_and_key_are_there(client: FlaskClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {"database": "ok", "signing_key": "ok"}}


def test_not_ready_without_signing_key(database_url: str, tmp_path: Path) -> None:
    app = create_app(app_config(database_url, tmp_path))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert "no active signing key" in ready.get_json()["checks"]["signing_key"]


def test_a_database_init_never_ran_on_is_not_ready_not_a_fault(tmp_path: Path) -> None:
    app = create_app(app_config(f"sqlite:///{tmp_path / 'empty.sqlite3'}", tmp_path))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == "ok"
    assert "consent-gateway init" in ready.get_json()["checks"]["signing_key"]
