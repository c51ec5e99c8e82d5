"""Decision throughput and latency over HTTP on loopback, against a bare Flask endpoint served the same way.

    python bench/decisions.py [--backend sqlite|postgresql|both] [--seconds 10] [--clients 16]
                              [--py-spy DIR [--py-spy-cpu]] [--only gateway|bare] [--floor] [--config NAME=VALUE]
                              [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each database: a migrated database with one app, one registered algorithm and 64 unlimited
consents; the gateway under gunicorn (``consent-gateway serve``, 2 workers x 4 threads); closed-loop
clients (raw keep-alive sockets, pre-encoded requests: see ``_harness.load``) in two processes sending
``POST /v1/decisions`` (each an allow: a use counted, a ticket signed, the decision and its audit entry
committed, the audit entry sequenced by the serving processes' ticker). Then ``bench/bare_app.py`` under
the same gunicorn options with the same requests. Reported besides throughput and latency: the CPU
each side used per request (gateway workers, PostgreSQL's backends, the load generator), read from
``/proc/<pid>/stat``. Targets: gateway throughput >= 0.5 x the bare endpoint's on SQLite, >= 0.4 x on
PostgreSQL, p99 <= 25 ms on both.

``--floor`` also runs ``bench/floor_app.py`` on the same database with the same requests: the least a
decision can cost with every guarantee kept, as a Flask view and with no framework at all, so the gateway
can be read against what any implementation could reach (``floor_ratio`` and ``floor_wsgi_ratio``).

``--py-spy DIR`` records every gateway worker during the measured phase (``bench/pyspy_summary.py``
reads the files); ``--config NAME=VALUE`` sets ``CONSENT_GATEWAY_NAME`` for an experiment.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    Load,
    Request,
    Run,
    database,
    free_port,
    gateway_app,
    gateway_server,
    load,
    load_bare,
    load_gateway,
    postgres_backends,
    report,
    set_layout,
    wsgi_server,
)

from tests.factories import make_app_client, make_consent, register_algorithm

FILING = "BENCH-0001"
CONSENTS = 64


def _floor(target: str, url: str, backend: str, requests: list[Request], run: Run) -> Load:
    with wsgi_server(target, free_port(), env={"FLOOR_DATABASE_URL": url}) as served:
        return load(served.url, requests, processes=run.processes, threads=max(1, run.clients // run.processes),
                    seconds=run.seconds, expect=201,
                    watch={"floor workers": lambda: [served.process.pid, *served.worker_pids()],
                           **({"database server": postgres_backends(url)} if backend == "postgresql" else {})})


def bench_backend(backend: str, pg_url: str, run: Run, *, which: str = "both",
                  config: dict[str, str] | None = None, floor: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": backend, "endpoint": "POST /v1/decisions"}
    with database(backend, pg_url) as url:
        port = free_port()
        app = gateway_app(url, f"http://127.0.0.1:{port}")
        edit_app = make_app_client(app, scope="edit:face", name="Bench App")
        register_algorithm(app, FILING, operations=("face_swap",))
        consents = [make_consent(app, edit_app.client_id) for _ in range(CONSENTS)]
        media = [{"role": "source", "sha256": hashlib.sha256(b"bench").hexdigest()}]
        bodies = [{"operation": "face_swap", "algorithm": FILING, "consents": [c], "media": media}
                  for c in consents]
        with gateway_server(url, port, **(config or {})) as server:
            token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            requests = [("POST", "/v1/decisions", headers, body) for body in bodies]
            if which in ("both", "gateway"):
                gateway = load_gateway(server, url, backend, requests, run, expect=201, name="decisions")
                result["gateway"] = gateway.summary()
        if which in ("both", "bare"):
            bare = load_bare(requests, run, expect=201)
            result["bare_flask"] = bare.summary()
        if floor:
            # The same requests, the same database (its token, consents and algorithm), the least work:
            # as a Flask view, then with no framework at all.
            for side, target in (("floor", "bench.floor_app:app"), ("floor_wsgi", "bench.floor_app:wsgi")):
                result[side] = _floor(target, url, backend, requests, run).summary()
    if which == "both":
        result["ratio"] = round(gateway.throughput / bare.throughput, 3)
    if floor and which in ("both", "bare"):
        result["floor_ratio"] = round(result["floor"]["rps"] / bare.throughput, 3)
        result["floor_wsgi_ratio"] = round(result["floor_wsgi"]["rps"] / bare.throughput, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--layout", default="2x4", metavar="WORKERSxTHREADS",
                        help="gunicorn processes x threads for the gateway and the bare endpoint alike")
    parser.add_argument("--load-processes", type=int, default=2,
                        help="processes the closed-loop clients are spread over (threads in each)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record each gateway worker with py-spy (raw collapsed stacks) into DIR")
    parser.add_argument("--py-spy-cpu", action="store_true",
                        help="sample only threads on the CPU (default: wall time, waiting included)")
    parser.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                        help="extra gateway configuration for an experiment (CONSENT_GATEWAY_NAME=VALUE)")
    parser.add_argument("--only", choices=["both", "gateway", "bare"], default="both",
                        help="run only one side (for profiling); the ratio needs both")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench/floor_app.py: the least a decision can cost, with and without Flask")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    workers, _, threads = args.layout.partition("x")
    set_layout(int(workers), int(threads))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    run = Run(seconds=args.seconds, clients=args.clients, processes=args.load_processes, profile=args.py_spy,
              profile_idle=not args.py_spy_cpu)
    config = dict(item.split("=", 1) for item in args.config)
    loadavg_before = os.getloadavg()
    results = [bench_backend(b, args.pg_url, run, which=args.only, config=config, floor=args.floor) for b in backends]
    report(results, loadavg_before=loadavg_before)


if __name__ == "__main__":
    main()
