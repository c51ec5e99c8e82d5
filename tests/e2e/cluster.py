"""Production-shaped gateways for end-to-end tests: ``consent-gateway serve`` (gunicorn) subprocesses.

Several of them can share one database, the way several machines behind a load balancer do: the same
``MASTER_KEY``, ``SECRET_KEY`` and ``ISSUER``, each on its own port. ``HttpSubject`` is a person's
browser speaking plain HTTP to whichever of them it is sent to (cookies are per host, not per port,
so one browser session spans every server on 127.0.0.1, as it would behind one public name).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import MASTER_KEY

SECRET_KEY = "cluster-secret-key-shared-by-every-process"
ISSUER = "http://consent.test"  # the public name behind the load balancer, the same for every server
SERVE = Path(sys.executable).parent / "consent-gateway"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cluster_env(database_url: str, outbox: Path, **config: Any) -> dict[str, str]:
    """The environment every process of one deployment shares."""
    return {
        **os.environ,
        "CONSENT_GATEWAY_DATABASE_URL": database_url,
        "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
        "CONSENT_GATEWAY_SECRET_KEY": SECRET_KEY,
        "CONSENT_GATEWAY_ISSUER": ISSUER,
        "CONSENT_GATEWAY_NOTIFIER": f"outbox:{outbox}",
        "CONSENT_GATEWAY_LOG_LEVEL": "WARNING",
        **{f"CONSENT_GATEWAY_{key}": str(value) for key, value in config.items()},
    }


def cli(env: dict[str, str], *args: str) -> Any:
    """Run ``consent-gateway ARGS --json`` and return its JSON answer."""
    done = subprocess.run([str(SERVE), *args, "--json"], env=env, capture_output=True, check=True, timeout=120)
    return json.loads(done.stdout)


@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill_worker(self) -> int:
        """kill -9 one worker (gunicorn's arbiter starts a new one); returns the killed pid."""
        pid = self.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        return pid


@contextmanager
def gateway_process(env: dict[str, str], workdir: Path, *, workers: int = 1,
                    port: int | None = None) -> Iterator[GatewayProcess]:
    port = port or free_port()
    log = workdir / f"gateway-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([str(SERVE), "serve", "--port", str(port), "--workers", str(workers)],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
        server = GatewayProcess(url=f"http://127.0.0.1:{port}", process=process, log=log)
        try:
            wait_until_serving(server, workers)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_serving(server: GatewayProcess, workers: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}: {server.log.read_text()[-2000:]}")
        try:
            if (httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
                    and len(server.worker_pids()) == workers):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # a process starting up: there is nothing to wait on but the socket
    raise RuntimeError(f"gunicorn did not start within {seconds} s")


def newest_code(outbox: Path, to: str) -> str:
    """The newest one-time code sent to ``to``, read from the outbox the way a person reads mail."""
    for path in sorted(outbox.glob("*.json"), reverse=True):
        message = json.loads(path.read_text("utf-8"))
        if message["to"] == to:
            found = re.search(r"\b(\d{6})\b", message["text"])
            assert found, message
            return found.group(1)
    raise AssertionError(f"no message to {to} in {outbox}")


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


class HttpSubject:
    """A person's browser: plain form posts over HTTP, to any server of the deployment."""

    def __init__(self, outbox: Path, contact: str) -> None:
        self.outbox = outbox
        self.contact = contact
        self.http = httpx.Client(timeout=30, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def _page(self, url: str) -> str:
        response = self.http.get(url)
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        return response.text

    def grant(self, server: str, request_id: str, operations: list[str]) -> httpx.Response:
        """Prove the contact with the emailed code, read the notice, tick ``operations``, approve."""
        screen = f"{server}/consent/{request_id}"
        sent = self.http.post(f"{screen}/code", data={"csrf_token": _field(self._page(screen), "csrf_token")})
        assert sent.status_code == 303, (sent.status_code, sent.text[sent.text.find("<main"):][:800])
        checked = self.http.post(f"{screen}/verify", data={
            "csrf_token": _field(self._page(screen), "csrf_token"),
            "code": newest_code(self.outbox, self.contact)})
        assert checked.status_code == 303, checked.text[:500]
        notice = self._page(screen)
        decided = self.http.post(f"{screen}/decision", data={
            "csrf_token": _field(notice, "csrf_token"), "notice_sha256": _field(notice, "notice_sha256"),
            "locale": _field(notice, "locale"), "operations": operations, "action": "approve"})
        assert decided.status_code in (200, 303), decided.text[:500]
        return decided

    def withdraw(self, server: str, consent_id: str) -> httpx.Response:
        """Withdraw on /me (signed in by the consent screen's code) with the confirmation step."""
        confirm = self._page(f"{server}/me/consents/{consent_id}/withdraw")
        return self.http.post(f"{server}/me/consents/{consent_id}/withdraw",
                              data={"csrf_token": _field(confirm, "csrf_token")})


def token(server: str, client_id: str, secret: str) -> str:
    response = httpx.post(f"{server}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client_id, secret), timeout=30)
    assert response.status_code == 200, response.text
    value: str = response.json()["access_token"]
    return value
