"""``/`` is a page for a newcomer, not a JSON 404."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from gateway.keys.store import KeyStoreError


def test_the_root_is_a_page_with_the_way_on(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for link in ("/docs", "/me", "/.well-known/jwks.json", "/v1/algorithms", "/readyz"):
        assert f'href="{link}"' in html, link
    assert "<strong>ready</strong>" in html


def test_the_root_says_when_the_gateway_is_not_ready(app: Flask, client: FlaskClient) -> None:
    # What keyring.init_app keeps when the master key cannot be used.
    app.extensions["consent_gateway.keys"] = KeyStoreError("master key unreadable")
    html = client.get("/").get_data(as_text=True)
    assert "<strong>not ready</strong>" in html
    assert "master key unreadable" in html
