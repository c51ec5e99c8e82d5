"""Shared by bench/decisions.py and bench/proxy.py: databases, production servers, load, figures.

Every server runs the way production runs it: gunicorn, gthread workers, on loopback, in its own
process; the load comes from separate processes so the client's GIL never throttles the server's.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _audit_db import temp_database  # noqa: E402  (bench/ is on sys.path when a bench script runs)

from gateway import create_app  # noqa: E402
from gateway.core.clock import utcnow  # noqa: E402
from gateway.core.db import db  # noqa: E402
from gateway.keys.keyring import key_store  # noqa: E402

MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 4  # gateway.core.server.run's default


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    """A freshly migrated database: a SQLite file, or a new loopback PostgreSQL database dropped afterwards."""
    with temp_database(backend, pg_url) as url:
        yield url


def gateway_app(url: str, issuer: str) -> Any:
    app = create_app({"DATABASE_URL": url, "MASTER_KEY": MASTER_KEY, "ISSUER": issuer,
                      "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"})
    with app.app_context(), db.unit_of_work() as session:
        if key_store().active(session) is None:
            key_store().create(session, utcnow())
    return app


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def peak_rss_mib(self) -> float:
        """The largest peak resident set (VmHWM) among the workers."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)


@contextlib.contextmanager
def gateway_server(url: str, port: int, *, workers: int = WORKERS, **config: Any) -> Iterator[Server]:
    env = {**os.environ, "CONSENT_GATEWAY_DATABASE_URL": url, "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
           "CONSENT_GATEWAY_ISSUER": f"http://127.0.0.1:{port}", "CONSENT_GATEWAY_SECRET_KEY": "bench",
           "CONSENT_GATEWAY_LOG_LEVEL": "WARNING",
           **{f"CONSENT_GATEWAY_{k}": str(v) for k, v in config.items()}}
    command = [str(BIN / "consent-gateway"), "serve", "--port", str(port), "--workers", str(workers)]
    with _process(command, env, port, workers) as server:
        yield server


@contextlib.contextmanager
def wsgi_server(target: str, port: int, *, workers: int = WORKERS, env: dict[str, str] | None = None
                ) -> Iterator[Server]:
    """Any WSGI app (``module:app``) under gunicorn with the options gateway/core/server.py uses."""
    command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(THREADS), "--timeout", "120",
               "--graceful-timeout", "20", "--keep-alive", "5", "--limit-request-field_size", "8190",
               "--limit-request-fields", "100", "--chdir", str(ROOT), target]
    with _process(command, {**os.environ, **(env or {})}, port, workers) as server:
        yield server


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], port: int, workers: int) -> Iterator[Server]:
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError, OSError):
                if (httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
                        and len(server.worker_pids()) == workers):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {"requests": self.requests, "errors": self.errors, "rps": round(self.throughput, 1),
                "p50_ms": round(self.percentile(50), 2), "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2)}


Request = tuple[str, str, dict[str, str], Any]  # method, path, headers, json body


def _drive(base_url: str, requests: list[Request], threads: int, seconds: float, expect: int) -> tuple[
        list[float], int, int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=base_url, timeout=60) as http:
            i = index
            while time.monotonic() < stop:
                method, path, headers, body = requests[i % len(requests)]
                i += threads
                started = time.perf_counter()
                response = http.request(method, path, headers=headers, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == expect:
                    mine.append(elapsed)
                else:
                    failed += 1
        with lock:
            latencies.extend(mine)
            errors += failed

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, errors, len(latencies) + errors


def load(base_url: str, requests: list[Request], *, processes: int, threads: int, seconds: float,
         expect: int = 200, warmup: float = 2.0) -> Load:
    """Closed-loop load: ``processes`` x ``threads`` clients, each sending its next request on an answer."""
    with ProcessPoolExecutor(processes) as pool:
        if warmup:
            list(pool.map(_drive, *zip(*[(base_url, requests, threads, warmup, expect)] * processes,
                                       strict=True)))
        started = time.monotonic()
        results = list(pool.map(_drive, *zip(*[(base_url, requests, threads, seconds, expect)] * processes,
                                             strict=True)))
        elapsed = time.monotonic() - started
    latencies = [x for lat, _, _ in results for x in lat]
    return Load(requests=len(latencies), errors=sum(e for _, e, _ in results), seconds=elapsed,
                latencies_ms=latencies)


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times
