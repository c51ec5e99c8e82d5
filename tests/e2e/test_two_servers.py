"""Two gateway servers (gunicorn, two workers each) on one PostgreSQL: the scale-out deployment.

The documented production set-up (docs/OPERATIONS.md): ``consent-gateway init`` once, then
``consent-gateway serve`` on every machine with the same MASTER_KEY, SECRET_KEY and ISSUER. Nothing a
request needs may live in only one process, so every step below crosses from one server to the other.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL, fresh_database
from tests.e2e.cluster import HttpSubject, cli, cluster_env, gateway_process, token
from tests.factories import ALL_SCOPES

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

FILING = "FN-SCALE-0001"
CONTACT = "alice@example.com"
TOKEN_LIMIT = 6


@pytest.fixture
def pg_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    yield from fresh_database("postgresql", request, tmp_path)


def _decide(server: str, bearer: str, consent_id: str) -> httpx.Response:
    return httpx.post(f"{server}/v1/decisions", headers={"Authorization": f"Bearer {bearer}"}, timeout=30, json={
        "operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
        "media": [{"role": "source", "sha256": hashlib.sha256(b"portrait").hexdigest()}]})


def test_the_full_flow_crosses_two_servers_on_one_database(pg_database: str, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    env = cluster_env(pg_database, outbox, TOKEN_RATE_LIMIT_PER_MINUTE=TOKEN_LIMIT)
    assert cli(env, "init")["migrated"] is True  # once per deployment, before any server starts
    app = cli(env, "clients", "create", "--name", "Birthday Videos", "--scope", ALL_SCOPES)
    cli(env, "algorithms", "add", "--name", "Swap", "--filing-number", FILING, "--provider", "P", "--product", "Q",
        "--operations", "face_swap", "--upstream", "http://127.0.0.1:9/edit")
    subject = HttpSubject(outbox, CONTACT)
    with gateway_process(env, tmp_path, workers=2) as a, gateway_process(env, tmp_path, workers=2) as b:
        bearer = token(a.url, app["client_id"], app["client_secret"])
        auth = {"Authorization": f"Bearer {bearer}"}

        # Asked on A; the person proves the address and approves on B.
        created = httpx.post(f"{a.url}/v1/consent-requests", headers=auth, timeout=30, json={
            "subject": {"contact": CONTACT}, "operations": ["face_swap"], "purpose": "birthday video"})
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        assert created.json()["consent_url"] == f"http://consent.test/consent/{request_id}"
        subject.grant(b.url, request_id, ["face_swap"])
        granted = httpx.get(f"{a.url}/v1/consent-requests/{request_id}", headers=auth, timeout=30).json()
        assert granted["status"] == "granted"
        consent_id = granted["consent_id"]

        # A signed record from either server verifies on the other.
        record = httpx.get(f"{b.url}/v1/consents/{consent_id}", headers=auth, timeout=30).json()["record"]
        report = httpx.post(f"{a.url}/v1/consents/verify", json={"record": record}, timeout=30).json()
        assert report["valid"] is True
        assert report["status"] == "active"

        assert _decide(a.url, bearer, consent_id).status_code == 201
        assert _decide(b.url, bearer, consent_id).status_code == 201

        # Withdrawn on A (the person, on /me); the very next decision, on B, is denied.
        withdrawn = subject.withdraw(a.url, consent_id)
        assert withdrawn.status_code == 303, withdrawn.text[:500]
        denied = _decide(b.url, bearer, consent_id)
        assert denied.status_code == 403
        assert denied.json()["reason"] == "consent_withdrawn"

        # A token revoked on A is refused on B at once (tokens are looked up, never cached).
        assert httpx.get(f"{b.url}/v1/clients/me", headers=auth, timeout=30).status_code == 200
        revoked = httpx.post(f"{a.url}/oauth/revoke", data={"token": bearer},
                             auth=(app["client_id"], app["client_secret"]), timeout=30)
        assert revoked.status_code == 200
        refused = httpx.get(f"{b.url}/v1/clients/me", headers=auth, timeout=30)
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_token"

        _token_limit_is_counted_across_servers(a.url, b.url, app["client_id"], app["client_secret"])
    subject.close()


def _token_limit_is_counted_across_servers(a: str, b: str, client_id: str, secret: str) -> None:
    """Twice the limit, alternating: each server alone would allow all of its half."""
    for _ in range(3):
        window = int(time.time()) // 60
        answers = []
        for i in range(2 * TOKEN_LIMIT):
            server = a if i % 2 == 0 else b
            response = httpx.post(f"{server}/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(client_id, secret), timeout=30)
            answers.append((server, response.status_code))
        if int(time.time()) // 60 != window:
            continue  # the fixed window turned over mid-way (the counts restarted); try again
        statuses = [status for _, status in answers]
        assert set(statuses) <= {200, 429}
        assert statuses.count(200) <= TOKEN_LIMIT
        assert {server for server, status in answers if status == 429} == {a, b}
        first_refusal = statuses.index(429)
        assert all(status == 429 for status in statuses[first_refusal:])
        return
    pytest.fail("the minute turned over during every attempt")
