"""RFC 7591 client metadata: an app registers its home page, privacy policy, terms and logo."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from gateway.auth.models import OAuthClient
from gateway.cli import main
from gateway.core.db import db
from tests.factories import audit_entries

METADATA = {
    "client_uri": "https://birthday.example/",
    "policy_uri": "https://birthday.example/privacy#data",
    "tos_uri": "https://birthday.example/terms",
    "logo_uri": "https://cdn.birthday.example/logo.png",
}


def _create(runner: FlaskCliRunner, *options: str) -> object:
    return runner.invoke(main, ["clients", "create", "--name", "Birthday Videos", "--scope", "consent:read",
                                *options, "--json"])


def test_the_cli_registers_the_metadata(app: Flask, runner: FlaskCliRunner) -> None:
    result = _create(runner, *(arg for name, uri in METADATA.items()
                               for arg in (f"--{name.replace('_', '-')}", uri)))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    created = json.loads(result.output)  # type: ignore[attr-defined]
    assert {name: created[name] for name in METADATA} == METADATA
    with app.app_context():
        row = db.session.get(OAuthClient, created["client_id"])
        assert row is not None
        assert {name: getattr(row, name) for name in METADATA} == METADATA
    assert {name: audit_entries(app, "client.created")[0]["detail"][name] for name in METADATA} == METADATA


def test_metadata_is_optional(app: Flask, runner: FlaskCliRunner) -> None:
    result = _create(runner)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    created = json.loads(result.output)  # type: ignore[attr-defined]
    assert all(created[name] is None for name in METADATA)


def test_plain_http_on_loopback_is_accepted_for_development(runner: FlaskCliRunner) -> None:
    result = _create(runner, "--logo-uri", "http://127.0.0.1:8000/logo.png", "--client-uri", "http://localhost:3000")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(("option", "uri"), [
    ("--logo-uri", "http://cdn.example/logo.png"),  # plain http only on loopback
    ("--logo-uri", "data:image/png;base64,AAAA"),
    ("--policy-uri", "javascript:alert(1)"),
    ("--client-uri", "https://user:pw@birthday.example/"),
    ("--logo-uri", "https://cdn.example;script-src/logo.png"),  # would break out of the CSP
    ("--tos-uri", 'https://birthday.example/"><script>alert(1)</script>'),
    ("--client-uri", "https://birthday example/"),
    ("--logo-uri", "https://cdn.example:port/logo.png"),
    ("--policy-uri", "/privacy"),
])
def test_unusable_urls_are_refused(runner: FlaskCliRunner, option: str, uri: str) -> None:
    result = _create(runner, option, uri)
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert option.removeprefix("--").replace("-", "_") in result.output  # type: ignore[attr-defined]


def test_every_metadata_option_has_help(runner: FlaskCliRunner) -> None:
    result = runner.invoke(main, ["clients", "create", "--help"])
    for option in ("--client-uri", "--policy-uri", "--tos-uri", "--logo-uri"):
        assert option in result.output
