"""Races on real servers: a withdrawal while 16 threads decide, and 50 requests for the last 10 uses."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from flask import Flask

from tests.e2e.conftest import LiveServer
from tests.factories import App, audit_entries, consent_row, make_app_client, make_consent, register_algorithm
from tests.gateway.conftest import FILING, gunicorn_gateway

pytestmark = pytest.mark.e2e

MEDIA = [{"role": "source", "sha256": hashlib.sha256(b"portrait").hexdigest()}]
THREADS = 16
ROUNDS = 8  # decisions per thread before the withdrawal, and again after it


@dataclass(frozen=True)
class Attempt:
    started: float
    status: int
    code: str | None


def _token(base_url: str, edit_app: App) -> str:
    response = httpx.post(f"{base_url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(edit_app.client_id, edit_app.secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _decide(http: httpx.Client, consent_id: str) -> Attempt:
    started = time.monotonic()
    response = http.post("/v1/decisions", json={"operation": "face_swap", "algorithm": FILING,
                                                 "consents": [consent_id], "media": MEDIA})
    code = None if response.status_code == 201 else response.json().get("code")
    return Attempt(started, response.status_code, code)


def _withdraw_race(base_url: str, app: Flask) -> None:
    edit_app = make_app_client(app, name="Racing App")
    register_algorithm(app, FILING)
    consent_id = make_consent(app, edit_app.client_id)
    token = _token(base_url, edit_app)
    attempts: list[Attempt] = []
    done = threading.Condition()
    stop = threading.Event()

    def decide_continuously() -> None:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            while not stop.is_set():
                attempt = _decide(http, consent_id)
                with done:
                    attempts.append(attempt)
                    done.notify_all()

    def wait_for(count: int) -> None:
        with done:
            assert done.wait_for(lambda: len(attempts) >= count, timeout=120)

    threads = [threading.Thread(target=decide_continuously) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(THREADS * ROUNDS)
        withdrawn = httpx.post(f"{base_url}/v1/consents/{consent_id}/revoke", json={"on_behalf_of_subject": True},
                               headers={"Authorization": f"Bearer {token}"}, timeout=60)
        returned = time.monotonic()
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["status"] == "withdrawn"
        with done:
            seen = len(attempts)
        wait_for(seen + THREADS * ROUNDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    after = [a for a in attempts if a.started > returned]
    assert after, "no decision started after the withdrawal returned"
    assert [a for a in after if a.status == 201] == []
    assert {a.code for a in after} == {"consent_withdrawn"}
    allowed = [a for a in attempts if a.status == 201]
    assert allowed, "the race never allowed anything before the withdrawal"
    assert all(a.status in (201, 403) for a in attempts)
    # Every allow took exactly one use and was audited; nothing was lost or counted twice.
    assert consent_row(app, consent_id) == ("withdrawn", len(allowed))
    assert len(audit_entries(app, "decision.allowed")) == len(allowed)
    assert len(audit_entries(app, "decision.denied")) == len(attempts) - len(allowed)


def test_no_allow_starts_after_the_withdrawal_returned(live_server: LiveServer) -> None:
    _withdraw_race(live_server.url, live_server.app)


@pytest.fixture
def two_processes(database_url: str, tmp_path: Path) -> Iterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several server processes share one database in production: PostgreSQL")
    with gunicorn_gateway(database_url, tmp_path, workers=2) as server:
        assert len(server.worker_pids()) == 2
        yield server.url


def test_no_allow_starts_after_the_withdrawal_returned_across_processes(
    app: Flask, two_processes: str
) -> None:
    _withdraw_race(two_processes, app)


def test_fifty_concurrent_requests_take_exactly_max_uses(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    """On the production server: two worker processes of four threads each, 50 clients at once."""
    edit_app = make_app_client(app, name="Greedy App")
    register_algorithm(app, FILING)
    consent_id = make_consent(app, edit_app.client_id, max_uses=10)
    start = threading.Barrier(50)
    attempts: list[Attempt] = []
    lock = threading.Lock()

    with gunicorn_gateway(database_url, tmp_path, workers=2) as server:
        token = _token(server.url, edit_app)

        def one() -> None:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=120) as http:
                start.wait()
                attempt = _decide(http, consent_id)
            with lock:
                attempts.append(attempt)

        threads = [threading.Thread(target=one) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(attempts) == 50
    assert sum(a.status == 201 for a in attempts) == 10
    assert {a.code for a in attempts if a.status != 201} == {"consent_exhausted"}
    assert consent_row(app, consent_id) == ("exhausted", 10)
    assert len(audit_entries(app, "decision.allowed")) == 10
    assert len(audit_entries(app, "decision.denied")) == 40
