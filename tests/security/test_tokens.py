"""alg confusion and kid injection in records presented to /v1/consents/verify and tickets presented
to an upstream. Keys come only from the gateway's own key set; headers naming other keys are ignored.

(alg none, HS256 keyed with the public key, unknown kid, altered payloads and replayed tickets are in
tests/consent/test_jws.py, test_ticket_verifier.py, tests/gateway/consents/test_verify.py and
tests/gateway/demo/test_demo_upstream.py.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient

from consent.models import Consent
from consent.ticket_verifier import InMemoryReplayCache, TicketError, verify_ticket
from gateway.core.db import db
from gateway.demo.upstream import CachedJwks
from gateway.keys.keyring import key_store
from tests.conftest import ISSUER
from tests.factories import make_app_client, make_consent


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def _our_kid(app: Flask) -> str:
    with app.app_context(), db.unit_of_work() as session:
        row = key_store().active(session)
        assert row is not None
        return row.kid


ATTACKER = Ed25519PrivateKey.generate()
ATTACKER_X = _b64(ATTACKER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
KID_INJECTIONS: list[Any] = [
    "../../../../../../etc/passwd", "/dev/null", "' OR '1'='1", "\"; DROP TABLE signing_keys; --",
    "*", "%", "x" * 10_000, "", 0, None, ["a"], {"$ne": None}, "http://127.0.0.1:9/jwks.json",
]


@pytest.mark.parametrize("kid", KID_INJECTIONS, ids=[repr(k)[:30] for k in KID_INJECTIONS])
def test_kid_injection_in_a_presented_record_finds_no_key(app: Flask, client: FlaskClient, kid: Any) -> None:
    claims = {"iss": ISSUER, "jti": "cns_forged", "sub": "sub_x", "aud": "cli_x", "iat": 1, "nbf": 1, "exp": 2**40}
    record = _forge({"alg": "EdDSA", "kid": kid, "typ": "consent+jwt"}, claims, ATTACKER)
    report = client.post("/v1/consents/verify", json={"record": record}).get_json()
    assert report["valid"] is False
    assert report["error"]["code"] in ("unknown_key", "malformed_record")


@pytest.mark.parametrize("header_extra", [
    {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": ATTACKER_X}},
    {"jku": "http://127.0.0.1:9/jwks.json"},
    {"x5u": "http://127.0.0.1:9/cert.pem"},
    {"x5c": [ATTACKER_X]},
])
def test_a_key_named_by_the_record_itself_is_never_used(app: Flask, client: FlaskClient,
                                                        header_extra: dict[str, Any]) -> None:
    """An attacker signs with their own key and points at it, under our kid: a bad signature."""
    claims = {"iss": ISSUER, "jti": "cns_forged", "sub": "sub_x", "aud": "cli_x", "iat": 1, "nbf": 1, "exp": 2**40}
    record = _forge({"alg": "EdDSA", "kid": _our_kid(app), "typ": "consent+jwt", **header_extra}, claims, ATTACKER)
    report = client.post("/v1/consents/verify", json={"record": record}).get_json()
    assert report == {"valid": False, "error": report["error"]}
    assert report["error"]["code"] == "bad_signature"


def test_a_genuine_record_rewritten_to_another_alg_or_kid_is_refused(app: Flask, client: FlaskClient) -> None:
    app_client = make_app_client(app)
    consent_id = make_consent(app, app_client.client_id)
    with app.app_context(), db.unit_of_work() as session:
        row = session.get(Consent, consent_id)
        assert row is not None
        record = row.record
    header_b64, payload_b64, signature_b64 = record.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    for changed in ({**header, "alg": "HS256"}, {**header, "alg": "none"}, {**header, "kid": header["kid"] + "x"},
                    {**header, "alg": "ES256"}, {**header, "typ": "consent-ticket+jwt"}):
        tampered = f"{_b64(json.dumps(changed).encode())}.{payload_b64}.{signature_b64}"
        report = client.post("/v1/consents/verify", json={"record": tampered}).get_json()
        assert report["valid"] is False, changed
    assert client.post("/v1/consents/verify", json={"record": record}).get_json()["valid"] is True


def test_tickets_with_injected_kids_or_embedded_keys_are_refused_without_fetching() -> None:
    gateway_key = Ed25519PrivateKey.generate()
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
                      "x": _b64(gateway_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}]}
    digest = hashlib.sha256(b"media").hexdigest()
    now = int(time.time())
    claims = {"iss": "https://gw.example", "jti": "dec_1", "aud": "FN-1", "client_id": "cli_x",
              "operation": "face_swap", "consents": ["cns_x"], "media": {"source": digest}, "iat": now,
              "exp": now + 60}
    for header in ({"alg": "EdDSA", "kid": "../k1", "typ": "consent-ticket+jwt"},
                   {"alg": "EdDSA", "kid": "k1", "typ": "consent-ticket+jwt",
                    "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ATTACKER_X}},
                   {"alg": "EdDSA", "kid": "k1", "typ": "consent-ticket+jwt", "jku": "http://127.0.0.1:9/"},
                   {"alg": "HS256", "kid": "k1", "typ": "consent-ticket+jwt"}):
        with pytest.raises(TicketError):
            verify_ticket(_forge(header, claims, ATTACKER), jwks, {"source": digest}, now,
                          issuer="https://gw.example", audience="FN-1", replay_cache=InMemoryReplayCache())


def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_refresh_window() -> None:
    """kid injection must not turn the upstream into an amplifier against the gateway's JWKS URL."""
    fetches: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, json={"keys": []})

    moment = [1000.0]
    cache = CachedJwks("http://gw.example/.well-known/jwks.json", min_refresh=10.0,
                       client=httpx.Client(transport=httpx.MockTransport(answer)), clock=lambda: moment[0])
    cache()
    refreshed = [cache.refresh() for _ in range(100)]
    assert refreshed.count(True) == 0
    assert len(fetches) == 1
    moment[0] += 10.0
    refreshed = [cache.refresh() for _ in range(100)]
    assert refreshed.count(True) == 1
    assert len(fetches) == 2
