"""Portal sessions across workers, cookie names, and production refusing development fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from gateway import create_app
from gateway.core.config import ConfigError
from tests.conftest import SESSION_COOKIE, app_config, init_keys
from tests.factories import PortalVisitor, create_consent_request, make_app_client, token_for


def _worker(database_url: str, tmp_path: Path, **extra: object) -> Flask:
    """A second process of the same deployment: same configuration, no SECRET_KEY set by anyone."""
    config = app_config(database_url, tmp_path, **extra)
    del config["SECRET_KEY"]
    application = create_app(config)
    application.instance_path = str(tmp_path / "instance")
    return application


def test_workers_without_a_configured_secret_accept_each_others_portal_sessions(database_url: str,
                                                                                 tmp_path: Path) -> None:
    first, second = _worker(database_url, tmp_path), _worker(database_url, tmp_path)
    init_keys(first)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    api = first.test_client()
    created = create_consent_request(api, token_for(api, make_app_client(first)))
    # The page (and its CSRF token) comes from one worker, the form post lands on the other.
    browser = first.test_client()
    html = PortalVisitor(first, browser).page(f"/consent/{created['id']}")
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    other = second.test_client()
    other.set_cookie(SESSION_COOKIE, cookie.value)
    response = other.post(f"/consent/{created['id']}/code",
                          data={"csrf_token": PortalVisitor.field(html, "csrf_token")})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]


def test_the_derived_secret_follows_the_master_key(database_url: str, tmp_path: Path) -> None:
    one = _worker(database_url, tmp_path)
    other = _worker(database_url, tmp_path, MASTER_KEY="b3RoZXItbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE=")
    assert one.config["SECRET_KEY"] != other.config["SECRET_KEY"]


def test_production_refuses_to_start_on_the_development_master_key(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MASTER_KEY"):
        _worker(database_url, tmp_path, PRODUCTION=True, MASTER_KEY="")
    assert _worker(database_url, tmp_path, PRODUCTION=True).config["SECRET_KEY"]


def test_the_portal_cookie_has_its_own_name_and_the_host_prefix_over_https(database_url: str,
                                                                            tmp_path: Path) -> None:
    assert _worker(database_url, tmp_path).config["SESSION_COOKIE_NAME"] == SESSION_COOKIE
    secure = _worker(database_url, tmp_path, ISSUER="https://gateway.example")
    assert secure.config["SESSION_COOKIE_NAME"] == "__Host-" + SESSION_COOKIE
