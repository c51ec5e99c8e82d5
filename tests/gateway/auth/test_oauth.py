"""App authentication end to end through the CLI-created client, the token endpoint and a protected route."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from freezegun import freeze_time

from gateway.cli import main
from tests.factories import App, bearer, make_app_client, token_for


def _cli_client(runner: FlaskCliRunner, scope: str) -> App:
    result = runner.invoke(main, ["clients", "create", "--name", "Face App", "--scope", scope, "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    return App(created["client_id"], created["client_secret"])


def test_cli_client_gets_token_and_calls_protected_endpoint(client: FlaskClient, runner: FlaskCliRunner) -> None:
    app_client = _cli_client(runner, "consent:read admin")
    token = token_for(client, app_client)
    response = client.get("/v1/keys", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["keys"][0]["status"] == "active"
    me = client.get("/v1/clients/me", headers=bearer(token)).get_json()
    assert me["client_id"] == app_client.client_id
    assert me["scope"] == ["admin", "consent:read"]


def test_client_secret_post_is_accepted(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app, "consent:read")
    response = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                 "client_id": app_client.client_id,
                                                 "client_secret": app_client.secret})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"].lower() == "bearer"
    assert body["scope"] == "consent:read"


def test_wrong_secret_is_rfc6749_invalid_client(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app)
    wrong = App(app_client.client_id, "not-the-secret")
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=wrong.basic())
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_basic_credentials_that_are_no_text_are_invalid_client(client: FlaskClient, path: str) -> None:
    # Latin-1 bytes, not UTF-8: a wrong client, answered in RFC 6749 form (it used to be a 500).
    garbage = base64.b64encode("caf\u00e9:s\u00e9cret".encode("latin-1")).decode()
    response = client.post(path, data={"grant_type": "client_credentials", "token": "x"},
                           headers={"Authorization": f"Basic {garbage}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_unknown_client_is_invalid_client(client: FlaskClient) -> None:
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=App("cli_nobody", "x").basic())
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_unsupported_grant_is_refused(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app)
    response = client.post("/oauth/token", data={"grant_type": "password", "username": "a", "password": "b"},
                           headers=app_client.basic())
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_token_cannot_exceed_client_scopes(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app, "consent:read")
    response = client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "admin"},
                           headers=app_client.basic())
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"


def test_missing_scope_is_403_problem(client: FlaskClient, app: Flask) -> None:
    token = token_for(client, make_app_client(app, "consent:read"))
    response = client.get("/v1/keys", headers=bearer(token))
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "insufficient_scope"
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]


def test_missing_and_garbage_tokens_are_401_problems(client: FlaskClient) -> None:
    missing = client.get("/v1/keys")
    assert missing.status_code == 401
    assert missing.get_json()["code"] == "missing_token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    garbage = client.get("/v1/keys", headers=bearer("forged-token"))
    assert garbage.status_code == 401
    assert garbage.get_json()["code"] == "invalid_token"
    basic = client.get("/v1/keys", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401


def test_expired_token_is_refused(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app, "admin")
    with freeze_time("2026-01-01T00:00:00Z") as frozen:
        token = token_for(client, app_client)
        assert client.get("/v1/keys", headers=bearer(token)).status_code == 200
        frozen.tick(timedelta(seconds=app.config["ACCESS_TOKEN_TTL"] + 1))
        response = client.get("/v1/keys", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_token"


def test_revoked_token_is_refused_on_next_request(client: FlaskClient, app: Flask) -> None:
    app_client = make_app_client(app, "admin")
    token = token_for(client, app_client)
    assert client.get("/v1/keys", headers=bearer(token)).status_code == 200
    revoke = client.post("/oauth/revoke", data={"token": token}, headers=app_client.basic())
    assert revoke.status_code == 200
    response = client.get("/v1/keys", headers=bearer(token))
    assert response.status_code == 401


def test_introspection_reports_own_tokens_only(client: FlaskClient, app: Flask) -> None:
    mine, other = make_app_client(app, "admin"), make_app_client(app, "consent:read")
    token = token_for(client, mine)
    active = client.post("/oauth/introspect", data={"token": token}, headers=mine.basic()).get_json()
    assert active["active"] is True
    assert active["client_id"] == mine.client_id
    assert active["scope"] == "admin"
    foreign = client.post("/oauth/introspect", data={"token": token}, headers=other.basic())
    assert foreign.get_json() == {"active": False} or foreign.status_code in (400, 401)
    client.post("/oauth/revoke", data={"token": token}, headers=mine.basic())
    assert client.post("/oauth/introspect", data={"token": token},
                       headers=mine.basic()).get_json() == {"active": False}


def test_authorization_server_metadata(client: FlaskClient) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["issuer"] == "http://gateway.test"
    assert meta["token_endpoint"] == "http://gateway.test/oauth/token"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert "edit:face" in meta["scopes_supported"]


def test_tokens_are_stored_hashed(client: FlaskClient, app: Flask) -> None:
    from gateway.auth.models import OAuthClient, OAuthToken
    from gateway.core.db import db

    app_client = make_app_client(app)
    token = token_for(client, app_client)
    with app.app_context():
        rows = db.session.query(OAuthToken).all()
        assert rows
        assert all(token not in r.access_token_hash for r in rows)
        stored = db.session.get(OAuthClient, app_client.client_id)
        assert stored is not None
        assert app_client.secret not in stored.client_secret_hash


def test_token_endpoint_rate_limit_holds_across_processes(app: Flask, database_url: str, tmp_path: object) -> None:
    from pathlib import Path

    from gateway import create_app
    from tests.conftest import app_config

    app.config["TOKEN_RATE_LIMIT_PER_MINUTE"] = 4
    # A second app on the same database stands in for another gateway process.
    other = create_app(app_config(database_url, Path(str(tmp_path)), TOKEN_RATE_LIMIT_PER_MINUTE=4))
    app_client = make_app_client(app)
    clients = [app.test_client(), other.test_client()]
    with freeze_time("2026-03-01T10:00:05Z"):
        statuses = [clients[i % 2].post("/oauth/token", data={"grant_type": "client_credentials"},
                                        headers=app_client.basic()).status_code for i in range(6)]
        refused = clients[0].post("/oauth/token", data={"grant_type": "client_credentials"},
                                  headers=App(app_client.client_id, "wrong").basic())
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) > 0
    with freeze_time("2026-03-01T10:01:05Z"):
        assert clients[1].post("/oauth/token", data={"grant_type": "client_credentials"},
                               headers=app_client.basic()).status_code == 200


def test_each_app_has_its_own_authorization_server_registered_once(database_url: str, tmp_path: Path) -> None:
    from gateway import create_app
    from tests.conftest import app_config

    first = create_app(app_config(database_url, tmp_path))
    second = create_app(app_config(database_url, tmp_path))
    one, other = first.extensions["consent_gateway.oauth"], second.extensions["consent_gateway.oauth"]
    assert one.server is not other.server
    assert one.protector is not other.protector
    # Building more apps adds no second client-credentials grant to an existing server.
    token_endpoint_grants = [g for g, _ in one.server._token_grants]  # only to count registrations
    assert len(token_endpoint_grants) == 1
