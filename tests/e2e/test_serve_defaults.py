"""`consent-gateway serve` with its defaults (two workers, nothing but a database configured).

What an operator gets without reading docs/OPERATIONS.md: the portal works whichever worker answers
each step, and one /metrics scrape counts the requests of every worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.cluster import GatewayProcess, HttpSubject, cli, cluster_env, gateway_process, token
from tests.factories import ALL_SCOPES

pytestmark = pytest.mark.e2e

@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    database_url = next(fresh_database("sqlite", request, tmp_path))
    env = cluster_env(database_url, tmp_path / "outbox")
    # Nobody set a session secret: the default must not break the portal.
    del env["CONSENT_GATEWAY_SECRET_KEY"]
    cli(env, "init")
    with gateway_process(env, tmp_path, workers=2) as server:
        yield server, env


def test_the_portal_works_across_workers_without_a_configured_secret(
        served: tuple[GatewayProcess, dict[str, str]], tmp_path: Path) -> None:
    server, env = served
    app = cli(env, "clients", "create", "--name", "Walks", "--scope", ALL_SCOPES)
    bearer = token(server.url, app["client_id"], app["client_secret"])
    for walk in range(6):
        created = httpx.post(f"{server.url}/v1/consent-requests", headers={"Authorization": f"Bearer {bearer}"},
                             json={"subject": {"contact": f"walker{walk}@example.com"}, "operations": ["face_swap"],
                                   "purpose": f"walk {walk}"}, timeout=30).json()
        # A new browser each time, and a new connection for every request (httpx.Client keeps none
        # across processes' restarts, and the two workers share the listening socket).
        # (A person per walk: one contact may be sent five codes an hour.)
        subject = HttpSubject(tmp_path / "outbox", f"walker{walk}@example.com")
        subject.http.headers["Connection"] = "close"
        try:
            subject.grant(server.url, created["id"], ["face_swap"])
        finally:
            subject.close()
        status = httpx.get(f"{server.url}/v1/consent-requests/{created['id']}",
                           headers={"Authorization": f"Bearer {bearer}"}, timeout=30).json()["status"]
        assert status == "granted", walk


def test_one_scrape_sums_every_worker(served: tuple[GatewayProcess, dict[str, str]]) -> None:
    server, _env = served
    assert len(server.worker_pids()) == 2
    for _ in range(40):
        httpx.get(f"{server.url}/healthz", headers={"Connection": "close"}, timeout=10)
    for _ in range(6):
        text = httpx.get(f"{server.url}/metrics", headers={"Connection": "close"}, timeout=10).text
        counted = re.search(r'consent_gateway_requests_total\{endpoint="/healthz",method="GET",status="200"\} '
                            r"([0-9.]+)", text)
        assert counted is not None, text[:2000]
        assert float(counted.group(1)) == 40


def test_a_stopped_server_leaves_no_metrics_directory_behind(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    database_url = next(fresh_database("sqlite", request, tmp_path))
    env = {**cluster_env(database_url, tmp_path / "outbox"), "TMPDIR": str(tmp_path)}
    cli(env, "init")
    with gateway_process(env, tmp_path, workers=2) as server:
        [metrics_dir] = tmp_path.glob("consent-gateway-metrics-*")
        server.kill_worker()  # a worker that dies (and is replaced) must not take the directory with it
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200
        assert metrics_dir.is_dir()
    assert server.process.returncode == 0
    assert list(tmp_path.glob("consent-gateway-metrics-*")) == []
