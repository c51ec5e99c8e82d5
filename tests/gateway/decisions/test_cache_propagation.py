"""What a serving process keeps in memory, and how fast a change made elsewhere reaches it.

Two ``consent-gateway serve`` processes on one database (SQLite file or PostgreSQL), changes made by a
third (the CLI) or by the other server:

- the algorithm white list is not cached: it is read with the consents on every decision, so a
  suspension is in force on the next decision in every process;
- the active signing key is kept for ``ACTIVE_KEY_SECONDS`` (0.5 s): a rotation, or a key that can no
  longer be used, is in force in every process within one second of its commit;
- access tokens are not cached: a revoked token is refused on the next request in every process;
- consents are not cached: a withdrawal is seen by the next decision in every process.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from flask import Flask
from sqlalchemy import select, update

from gateway.core.db import db
from gateway.keys.models import SigningKey
from gateway.keys.store import ACTIVE_KEY_SECONDS
from tests.e2e.cluster import GatewayProcess, cli, cluster_env, gateway_process
from tests.factories import App, make_app_client, make_consent, register_algorithm

pytestmark = pytest.mark.e2e

FILING = "FN-CACHE-0001"
MEDIA = [{"role": "source", "sha256": hashlib.sha256(b"portrait").hexdigest()}]
# The bound promised for a rotation or a lost key (the cache keeps a key ACTIVE_KEY_SECONDS).
IN_FORCE_WITHIN = 1.0


class Servers:
    def __init__(self, a: GatewayProcess, b: GatewayProcess, env: dict[str, str], edit_app: App) -> None:
        self.a, self.b, self.env, self.edit_app = a, b, env, edit_app
        response = httpx.post(f"{a.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(edit_app.client_id, edit_app.secret), timeout=30)
        assert response.status_code == 200, response.text
        self.token: str = response.json()["access_token"]

    def decide(self, server: GatewayProcess, consent_id: str) -> httpx.Response:
        return httpx.post(f"{server.url}/v1/decisions", headers={"Authorization": f"Bearer {self.token}"},
                          json={"operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
                                "media": MEDIA}, timeout=30)


@pytest.fixture
def servers(app: Flask, database_url: str, tmp_path: Path) -> Iterator[Servers]:
    """Two single-worker servers sharing the test's database, its signing key and master key."""
    register_algorithm(app, FILING, operations=("face_swap",))
    edit_app = make_app_client(app, name="Cache App")
    env = cluster_env(database_url, tmp_path / "outbox")
    with gateway_process(env, tmp_path) as a, gateway_process(env, tmp_path) as b:
        yield Servers(a, b, env, edit_app)


def _client_id(app: Flask) -> str:
    from gateway.auth.models import OAuthClient

    with app.app_context(), db.unit_of_work() as session:
        client = session.scalars(select(OAuthClient).where(OAuthClient.name == "Cache App")).one()
        return client.client_id


def _kid(ticket: str) -> str:
    kid: str = jwt.get_unverified_header(ticket)["kid"]
    return kid


def _key_rows(app: Flask) -> list[SigningKey]:
    with app.app_context(), db.unit_of_work() as session:
        return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at)))


def test_a_suspension_is_in_force_on_the_next_decision_in_every_process(app: Flask, servers: Servers) -> None:
    consent_id = make_consent(app, _client_id(app))
    assert servers.decide(servers.a, consent_id).status_code == 201
    assert servers.decide(servers.b, consent_id).status_code == 201

    cli(servers.env, "algorithms", "suspend", FILING)  # a third process

    for server in (servers.a, servers.b):
        denied = servers.decide(server, consent_id)
        assert denied.status_code == 403, denied.text
        assert denied.json()["code"] == "algorithm_suspended"


def test_a_key_rotation_is_in_force_in_every_process_within_a_second(app: Flask, servers: Servers) -> None:
    assert ACTIVE_KEY_SECONDS < IN_FORCE_WITHIN
    consent_id = make_consent(app, _client_id(app))
    [old] = _key_rows(app)
    tickets = [servers.decide(s, consent_id).json()["ticket"] for s in (servers.a, servers.b)]
    assert {_kid(t) for t in tickets} == {old.kid}

    rotated = cli(servers.env, "keys", "rotate")  # a third process
    new = next(row for row in _key_rows(app) if row.kid == rotated["kid"])
    committed = new.created_at.timestamp()  # set just before the commit: the bound is measured from it

    first_new: dict[str, float] = {}
    while time.time() < committed + IN_FORCE_WITHIN + 0.5:
        for server in (servers.a, servers.b):
            started = time.time()
            response = servers.decide(server, consent_id)
            assert response.status_code == 201, response.text
            ticket = response.json()["ticket"]
            tickets.append(ticket)
            if _kid(ticket) == new.kid:
                first_new.setdefault(server.url, started)
            else:
                # The old key may still sign, but only within the bound.
                assert _kid(ticket) == old.kid
                assert started < committed + IN_FORCE_WITHIN, "old key used more than a second after rotation"
    assert set(first_new) == {servers.a.url, servers.b.url}

    # Whatever was signed during the switch verifies with the published keys (the old one is retired,
    # still listed).
    published = jwt.PyJWKSet.from_dict(httpx.get(f"{servers.b.url}/.well-known/jwks.json", timeout=30).json())
    keys = {key.key_id: key for key in published.keys}
    for ticket in tickets:
        jwt.decode(ticket, keys[_kid(ticket)].key, algorithms=["EdDSA"], audience=FILING)


def test_a_key_that_is_gone_stops_every_allow_within_a_second(app: Flask, servers: Servers) -> None:
    consent_id = make_consent(app, _client_id(app))
    assert servers.decide(servers.a, consent_id).status_code == 201
    assert servers.decide(servers.b, consent_id).status_code == 201

    # No active key any more (an operator's mistake, or a key withdrawn by hand): nothing may be signed.
    with app.app_context(), db.unit_of_work() as session:
        session.execute(update(SigningKey).values(status="retired"))
    gone = time.time()

    unavailable: set[str] = set()
    while time.time() < gone + IN_FORCE_WITHIN + 0.5:
        for server in (servers.a, servers.b):
            started = time.time()
            response = servers.decide(server, consent_id)
            if response.status_code == 201:
                assert started < gone + IN_FORCE_WITHIN, "allowed more than a second after the key was gone"
                continue
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "signing_key_unavailable"
            unavailable.add(server.url)
    assert unavailable == {servers.a.url, servers.b.url}


def test_a_revoked_token_is_refused_on_the_next_request_in_every_process(app: Flask, servers: Servers) -> None:
    consent_id = make_consent(app, _client_id(app))
    assert servers.decide(servers.b, consent_id).status_code == 201

    revoked = httpx.post(f"{servers.a.url}/oauth/revoke", data={"token": servers.token},
                         auth=(servers.edit_app.client_id, servers.edit_app.secret), timeout=30)
    assert revoked.status_code == 200

    for server in (servers.b, servers.a):
        refused = servers.decide(server, consent_id)
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"


def test_a_withdrawal_is_seen_by_the_next_decision_in_every_process(app: Flask, servers: Servers) -> None:
    consent_id = make_consent(app, _client_id(app))
    assert servers.decide(servers.a, consent_id).status_code == 201
    assert servers.decide(servers.b, consent_id).status_code == 201

    withdrawn = httpx.post(f"{servers.a.url}/v1/consents/{consent_id}/revoke", json={"on_behalf_of_subject": True},
                           headers={"Authorization": f"Bearer {servers.token}"}, timeout=30)
    assert withdrawn.status_code == 200, withdrawn.text

    denied = servers.decide(servers.b, consent_id)
    assert denied.status_code == 403
    assert denied.json()["reason"] == "consent_withdrawn"
