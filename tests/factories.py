"""Factories for test data, created through the same code paths the product uses."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from flask import Flask
from flask.testing import FlaskClient

from gateway.clock import utcnow
from gateway.db import db
from gateway.oauth import create_client

ALL_SCOPES = "consent:read consent:write edit:face edit:voice audit:read audit:export admin"


@dataclass(frozen=True)
class App:
    client_id: str
    secret: str

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def make_app_client(app: Flask, scope: str = ALL_SCOPES, name: str = "Test App",
                    redirect_uris: tuple[str, ...] = ()) -> App:
    with app.app_context(), db.unit_of_work() as session:
        client, secret = create_client(session, name=name, scope=scope, redirect_uris=list(redirect_uris),
                                       now=utcnow())
        return App(client.client_id, secret)


def token_for(client: FlaskClient, app_client: App, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = client.post("/oauth/token", data=data, headers=app_client.basic())
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
