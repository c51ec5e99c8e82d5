"""Fixtures for the consent HTTP tests: an app with a token, and a subject's browser."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import App, PortalVisitor, make_app_client, token_for

REDIRECT_URI = "https://app.example/consent/done?from=gateway"


@dataclass(frozen=True)
class Caller:
    app: App
    token: str


@pytest.fixture
def caller(app: Flask, client: FlaskClient) -> Caller:
    registered = make_app_client(app, name="Birthday Videos", redirect_uris=(REDIRECT_URI,))
    return Caller(registered, token_for(client, registered))


@pytest.fixture
def other_caller(app: Flask, client: FlaskClient) -> Caller:
    registered = make_app_client(app, name="Other App")
    return Caller(registered, token_for(client, registered))


@pytest.fixture
def visitor(app: Flask) -> PortalVisitor:
    return PortalVisitor(app)
