"""Signing keys: JWS from the key store verifies with an independent JOSE library, also after rotation."""

from __future__ import annotations

import json

import jwt
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from consent import jws
from gateway.cli import main
from gateway.core.db import db
from gateway.keys.keyring import key_store, signer
from gateway.keys.models import SigningKey


def _sign(app: Flask, claims: dict[str, object]) -> str:
    with app.app_context():
        return jws.sign(claims, signer(db.session), "consent+jwt")


def _verify_with_pyjwt(client: FlaskClient, token: str) -> dict[str, object]:
    keyset = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").get_json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keyset.keys if k.key_id == kid)
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=["EdDSA"], options={"verify_aud": False})
    return claims


def test_jws_verifies_against_jwks_before_and_after_rotation(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner
) -> None:
    before = _sign(app, {"iss": "http://gateway.test", "jti": "cns_before"})
    assert _verify_with_pyjwt(client, before)["jti"] == "cns_before"

    result = runner.invoke(main, ["keys", "rotate", "--json"])
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)

    after = _sign(app, {"iss": "http://gateway.test", "jti": "cns_after"})
    assert jwt.get_unverified_header(after)["kid"] == rotated["kid"]
    assert _verify_with_pyjwt(client, after)["jti"] == "cns_after"
    # Records signed before the rotation keep verifying: the retired key stays published, marked.
    assert _verify_with_pyjwt(client, before)["jti"] == "cns_before"
    published = {k["kid"]: k for k in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert published[rotated["retired"][0]]["status"] == "retired"
    assert "status" not in published[rotated["kid"]]
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["use"] == "sig" for k in published.values())
    assert all("d" not in k for k in published.values())


def test_private_keys_are_encrypted_at_rest(app: Flask) -> None:
    with app.app_context():
        row = db.session.query(SigningKey).one()
        raw = key_store().signer_for(row, "x")._private.private_bytes_raw()
        assert raw not in row.encrypted_private_key
        assert len(row.encrypted_private_key) == 12 + 32 + 16  # nonce, key, GCM tag


def test_wrong_master_key_fails_closed(app: Flask, client: FlaskClient, tmp_path: object) -> None:
    import base64

    from gateway import create_app

    other = create_app({**app.config, "MASTER_KEY": base64.b64encode(b"x" * 32).decode()})
    ready = other.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["signing_key"].startswith("unavailable")


def test_keys_list_cli(runner: FlaskCliRunner) -> None:
    result = runner.invoke(main, ["keys", "list", "--json"])
    assert result.exit_code == 0
    assert [k["status"] for k in json.loads(result.output)["keys"]] == ["active"]
