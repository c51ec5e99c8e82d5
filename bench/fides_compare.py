"""The gateway beside Ethyca Fides: reading a consent and saving one, on the same PostgreSQL, in one run.

    bash bench/fides/setup.sh                     # once: Fides in bench/fides/.venv, its database, fides.toml
    python bench/fides_compare.py [--seconds 10] [--clients 16] [--fides-workers 1]
                                  [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each server runs alone while it is measured: first the gateway (``consent-gateway serve``: gunicorn,
2 workers x 4 threads, as ``bench/consents.py`` runs it), then Fides (``bench/fides/serve.sh``: uvicorn,
one process, as ``fides webserver`` runs it). The same load generator (``_harness.load``: raw keep-alive
sockets, pre-encoded requests), sequential (one client) and with 16 closed-loop clients (2 processes x 8
threads), for:

- **read one consent**: gateway ``GET /v1/consents/{id}`` (64 consents of the calling app, in turn; a
  token with ``consent:read``); Fides ``POST /api/v1/consent-request/preferences`` with ``{"email": …}``
  (64 people, each with a saved preference, in turn; an OAuth client with only ``consent:read``). That is
  Fides' authenticated server-side read of one person's consent: the OSS API has no read by consent id
  (the ``privacy-preferences`` endpoints of Fides 2.x are in the commercial Fides Plus).
- **save a consent**: gateway ``POST /v1/consent-requests`` (a pending request row and its audit entry);
  Fides' two-call save as its privacy centre does it, ``POST /api/v1/consent-request`` (an identity and a
  consent request) then ``PATCH /api/v1/consent-request/{id}/preferences`` (the preference saved), on one
  connection, timed as one operation. Consent identity verification is off in Fides (``fides.toml``),
  so no code is sent; ``POST /api/v1/consent-request`` alone is reported too.

Reported: requests (operations) per second, p50/p99, CPU per request of the server processes and of their
PostgreSQL backends, and the gateway/Fides throughput ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    ROOT,
    Load,
    Request,
    Run,
    Server,
    free_port,
    load,
    postgres_backends,
)
from consents import consent_workload
from sqlalchemy.engine import make_url

FIDES = ROOT / "bench" / "fides"
PEOPLE = 64
DATA_USE = "marketing.advertising"
Modes = dict[str, Run]


@dataclass(frozen=True)
class Row:
    operation: str
    mode: str
    gateway: dict[str, Any]
    fides: dict[str, Any]

    @property
    def ratio(self) -> float | None:
        return round(self.gateway["rps"] / self.fides["rps"], 2) if self.fides["rps"] else None


def _measure(base_url: str, requests: list[Request], run: Run, *, expect: int,
             watch: dict[str, Callable[[], list[int]]], follow: Any = None) -> Load:
    return load(base_url, requests, processes=run.processes, threads=max(1, run.clients // run.processes),
                seconds=run.seconds, expect=expect, watch=watch, follow=follow)


def bench_gateway(pg_url: str, modes: Modes) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with consent_workload("postgresql", pg_url, PEOPLE) as work:
        server = work.server
        watch = {"server": lambda: [server.process.pid, *server.worker_pids()],
                 "postgresql": postgres_backends(work.url)}
        for operation, requests, expect in (("read", work.reads, 200), ("save", work.asks, 201)):
            for mode, run in modes.items():
                results[f"{operation} {mode}"] = _measure(server.url, requests, run, expect=expect,
                                                          watch=watch).summary()
    return results


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += _descendants(int(child))
    return found


@contextlib.contextmanager
def fides_server(workers: int, log: Path) -> Iterator[Server]:
    """``bench/fides/serve.sh`` on a free loopback port, until ``/health`` answers (it migrates first)."""
    if not (FIDES / ".venv" / "bin" / "uvicorn").exists() or not (FIDES / "fides.toml").exists():
        raise SystemExit("Fides is not set up: run `bash bench/fides/setup.sh` first (see bench/fides/README.md)")
    port = free_port()
    with log.open("wb") as output:
        # Its own session, so that uvicorn's worker processes go with it.
        process = subprocess.Popen([str(FIDES / "serve.sh"), str(port), str(workers)], stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Fides exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Fides did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def patch_preferences(answer: bytes) -> Request:
    """Fides' second call: save the preference under the consent request the first call created."""
    consent_request = json.loads(answer)["consent_request_id"]
    return ("PATCH", f"/api/v1/consent-request/{consent_request}/preferences", {},
            {"code": None, "consent": [{"data_use": DATA_USE, "opt_in": True}]})


def bench_fides(pg_url: str, modes: Modes, workers: int) -> tuple[dict[str, dict[str, Any]], str]:
    config = tomllib.loads((FIDES / "fides.toml").read_text())
    security = config["security"]
    fides_db = make_url(pg_url).set(database=config["database"]["db"]).render_as_string(hide_password=False)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cg-bench-fides-") as folder, \
            fides_server(workers, Path(folder) / "fides.log") as server:
        api = f"{server.url}/api/v1"
        root = httpx.post(f"{api}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": security["oauth_root_client_id"],
            "client_secret": security["oauth_root_client_secret"]}).raise_for_status().json()["access_token"]
        client = httpx.post(f"{api}/oauth/client", json=["consent:read"],
                            headers={"Authorization": f"Bearer {root}"}).raise_for_status().json()
        token = httpx.post(f"{api}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client["client_id"],
            "client_secret": client["client_secret"]}).raise_for_status().json()["access_token"]
        # One saved preference for each of 64 people (a fresh run id: earlier runs' rows stay in fides_bench).
        run_id = os.urandom(4).hex()
        people = [f"bench-{run_id}-{i}@example.com" for i in range(PEOPLE)]
        with httpx.Client(base_url=server.url) as http:
            for email in people:
                created = http.post("/api/v1/consent-request", json={"identity": {"email": email}})
                method, path, _, body = patch_preferences(created.raise_for_status().content)
                http.request(method, path, json=body).raise_for_status()
        headers = {"Authorization": f"Bearer {token}"}
        reads: list[Request] = [("POST", "/api/v1/consent-request/preferences", headers, {"email": e})
                                for e in people]
        creates: list[Request] = [("POST", "/api/v1/consent-request", {},
                                   {"identity": {"email": f"save-{run_id}-{i}@example.com"}}) for i in range(PEOPLE)]
        watch = {"server": lambda: _descendants(server.process.pid), "postgresql": postgres_backends(fides_db)}
        for operation, follow in (("read", None), ("save", patch_preferences), ("create only", None)):
            requests = reads if operation == "read" else creates
            for mode, run in modes.items():
                results[f"{operation} {mode}"] = _measure(server.url, requests, run, expect=200, watch=watch,
                                                          follow=follow).summary()
    version = subprocess.run([str(FIDES / ".venv" / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('ethyca-fides'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return results, version


def _cpu(summary: dict[str, Any]) -> str:
    ms, cores = summary["cpu_ms_per_request"], summary["cpu_cores"]
    return ", ".join(f"{role} {ms[role]} ({cores[role]})" for role in ("server", "postgresql", "load generator"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--fides-workers", type=int, default=1,
                        help="uvicorn worker processes for Fides (1: as `fides webserver` runs it)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    modes = {"sequential": Run(seconds=args.seconds, clients=1, processes=1),
             f"{args.clients} clients": Run(seconds=args.seconds, clients=args.clients)}
    loadavg_before = os.getloadavg()
    gateway = bench_gateway(args.pg_url, modes)
    loadavg_between = os.getloadavg()
    fides, version = bench_fides(args.pg_url, modes, args.fides_workers)
    rows = []
    for operation, gateway_op, fides_op in (
            ("read one consent", "read", "read"),
            ("save a consent (Fides: two calls)", "save", "save"),
            ("create a consent request (Fides: first call only)", "save", "create only")):
        for mode in modes:
            rows.append(Row(operation, mode, gateway[f"{gateway_op} {mode}"], fides[f"{fides_op} {mode}"]))
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "loadavg_before": loadavg_before,
                                  "loadavg_between": loadavg_between, "loadavg_after": os.getloadavg()},
                      "fides": {"version": version, "workers": args.fides_workers},
                      "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}, indent=2))
    print()
    print(f"ethyca-fides {version}, {args.fides_workers} uvicorn process(es); gateway: gunicorn 2 x 4 threads")
    print("| operation | clients | gateway req/s | p50 ms | p99 ms | Fides req/s | p50 ms | p99 ms | gateway / Fides |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        g, f = r.gateway, r.fides
        print(f"| {r.operation} | {r.mode} | {g['rps']} | {g['p50_ms']} | {g['p99_ms']} | {f['rps']} | "
              f"{f['p50_ms']} | {f['p99_ms']} | {r.ratio} |")
    print()
    print("CPU ms per request (cores used): server processes, their PostgreSQL backends, load generator")
    for r in rows:
        gateway_cpu = "" if r.operation.startswith("create") else f"gateway {_cpu(r.gateway)}; "
        print(f"  {r.operation}, {r.mode}: {gateway_cpu}Fides {_cpu(r.fides)}")
    errors = {f"{name} {r.operation} {r.mode}": summary["errors"] for r in rows
              for name, summary in (("gateway", r.gateway), ("fides", r.fides)) if summary["errors"]}
    if errors:
        print(f"\nnon-2xx answers or failed exchanges: {errors}")


if __name__ == "__main__":
    main()
