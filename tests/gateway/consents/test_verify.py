"""POST /v1/consents/verify: a report for any presented record, and nothing forged passes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient

from consent import jws
from consent.records import CONSENT_TYP
from gateway.cli import main
from gateway.core.db import db
from gateway.keys.keyring import signer
from tests.factories import PortalVisitor, bearer, create_consent_request
from tests.gateway.consents.conftest import Caller


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify(client: FlaskClient, record: Any) -> dict[str, Any]:
    response = client.post("/v1/consents/verify", json={"record": record})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def consent(app: Flask, client: FlaskClient, caller: Caller, visitor: PortalVisitor) -> dict[str, Any]:
    created = create_consent_request(client, caller.token)
    visitor.grant(created["id"], ["face_swap"])
    consent_id = client.get(f"/v1/consent-requests/{created['id']}", headers=bearer(caller.token)).get_json()[
        "consent_id"]
    body: dict[str, Any] = client.get(f"/v1/consents/{consent_id}", headers=bearer(caller.token)).get_json()
    return body


def test_a_genuine_record_and_its_revocation_verify(client: FlaskClient, caller: Caller,
                                                    consent: dict[str, Any]) -> None:
    report = _verify(client, consent["record"])
    assert report["valid"] is True
    assert report["type"] == "consent"
    assert report["status"] == "active"
    assert report["consent_id"] == consent["id"]
    assert report["matches_stored_record"] is True
    assert report["claims"]["consent"]["operations"] == ["face_swap"]

    revoked = client.post(f"/v1/consents/{consent['id']}/revoke", json={}, headers=bearer(caller.token)).get_json()
    assert _verify(client, consent["record"])["status"] == "revoked"
    revocation = _verify(client, revoked["revocation"])
    assert revocation["valid"] is True
    assert revocation["type"] == "revocation"
    assert revocation["status"] == "revoked"
    assert revocation["claims"]["by"] == "client"


def test_an_altered_payload_is_caught(client: FlaskClient, consent: dict[str, Any]) -> None:
    header, payload, signature = consent["record"].split(".")
    claims = json.loads(_unb64(payload))
    claims["consent"]["operations"] = ["face_swap", "voice_clone"]
    altered = f"{header}.{_b64(rfc8785.dumps(claims))}.{signature}"
    report = _verify(client, altered)
    assert report == {"valid": False, "error": {"code": "bad_signature", "detail": report["error"]["detail"]}}


def test_alg_none_is_refused(client: FlaskClient, consent: dict[str, Any]) -> None:
    _, payload, _ = consent["record"].split(".")
    kid = json.loads(_unb64(consent["record"].split(".")[0]))["kid"]
    header = _b64(json.dumps({"alg": "none", "kid": kid, "typ": "consent+jwt"}).encode())
    assert _verify(client, f"{header}.{payload}.AAAA")["error"]["code"] == "algorithm_not_allowed"
    # The unsigned form (empty signature) is not even a well-formed JWS here.
    assert _verify(client, f"{header}.{payload}.")["valid"] is False


def test_hs256_with_the_public_key_as_secret_is_refused(client: FlaskClient, consent: dict[str, Any]) -> None:
    jwk = client.get("/.well-known/jwks.json").get_json()["keys"][0]
    _, payload, _ = consent["record"].split(".")
    header = _b64(json.dumps({"alg": "HS256", "kid": jwk["kid"], "typ": "consent+jwt"}).encode())
    for secret in (_unb64(jwk["x"]), json.dumps(jwk).encode(), jwk["x"].encode()):
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        report = _verify(client, f"{header}.{payload}.{_b64(mac)}")
        assert report["valid"] is False
        assert report["error"]["code"] == "algorithm_not_allowed"


def test_an_unknown_kid_is_refused(client: FlaskClient, consent: dict[str, Any]) -> None:
    claims = json.loads(_unb64(consent["record"].split(".")[1]))
    stranger = _KeySigner("k-not-ours", claims["iss"], Ed25519PrivateKey.generate())
    report = _verify(client, jws.sign(claims, stranger, CONSENT_TYP))
    assert report["error"]["code"] == "unknown_key"


def test_our_kid_with_another_key_is_a_bad_signature(client: FlaskClient, consent: dict[str, Any]) -> None:
    header = json.loads(_unb64(consent["record"].split(".")[0]))
    claims = json.loads(_unb64(consent["record"].split(".")[1]))
    impostor = _KeySigner(header["kid"], claims["iss"], Ed25519PrivateKey.generate())
    assert _verify(client, jws.sign(claims, impostor, CONSENT_TYP))["error"]["code"] == "bad_signature"


def test_a_record_of_another_issuer_is_refused(app: Flask, client: FlaskClient, consent: dict[str, Any]) -> None:
    claims = json.loads(_unb64(consent["record"].split(".")[1]))
    with app.app_context():
        # Even our own key signing for another issuer's name must not pass as our record.
        foreign = dataclasses.replace(signer(db.session), issuer="https://other-gateway.example")
        claims["iss"] = foreign.issuer
        token = jws.sign(claims, foreign, CONSENT_TYP)
    assert _verify(client, token)["error"]["code"] == "wrong_issuer"


def test_a_ticket_presented_as_a_record_names_both_kinds_it_is_not(
    app: Flask, client: FlaskClient, consent: dict[str, Any]
) -> None:
    claims = json.loads(_unb64(consent["record"].split(".")[1]))
    with app.app_context():
        token = jws.sign(claims, signer(db.session), "consent-ticket+jwt")
    error = _verify(client, token)["error"]
    assert error["code"] == "wrong_type"
    assert "'consent+jwt'" in error["detail"]
    assert "'consent-revocation+jwt'" in error["detail"]


@pytest.mark.parametrize("record", ["not-a-jws", "a.b.c", "x" * 70_000])
def test_garbage_is_reported_not_raised(client: FlaskClient, record: str) -> None:
    response = client.post("/v1/consents/verify", json={"record": record})
    if len(record) > 64 * 1024:
        assert response.status_code == 422  # over the documented body limit for a record
        return
    assert response.get_json()["valid"] is False
    assert response.get_json()["error"]["code"] == "malformed_record"


@pytest.mark.parametrize("body", [{}, {"record": 5}, {"record": "x", "extra": 1}])
def test_a_body_that_is_not_a_record_is_a_problem(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/v1/consents/verify", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_old_records_still_verify_after_key_rotation(app: Flask, client: FlaskClient,
                                                     consent: dict[str, Any]) -> None:
    rotated = app.test_cli_runner().invoke(main, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert _verify(client, consent["record"])["valid"] is True


@dataclasses.dataclass(frozen=True)
class _KeySigner:
    kid: str
    issuer: str
    key: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)
