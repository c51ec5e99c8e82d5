"""Decision throughput and latency over HTTP on loopback, against a bare Flask endpoint served the same way.

    python bench/decisions.py [--backend sqlite|postgresql|both] [--seconds 10] [--clients 16]
                              [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each database: a migrated database with one app, one registered algorithm and 64 unlimited
consents; the gateway under gunicorn (``consent-gateway serve``, 2 workers x 4 threads); closed-loop
clients in separate processes sending ``POST /v1/decisions`` (each an allow: a use counted, a ticket
signed, the decision and its audit entry committed). Then ``bench/bare_app.py`` under the same gunicorn
options with the same requests. Target: gateway throughput >= 0.5 x the bare endpoint's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from typing import Any

import httpx
from _harness import database, free_port, gateway_app, gateway_server, load, wsgi_server

from tests.factories import make_app_client, make_consent, register_algorithm

FILING = "BENCH-0001"
CONSENTS = 64


def bench_backend(backend: str, pg_url: str, seconds: float, clients: int) -> dict[str, Any]:
    processes = 2
    threads = max(1, clients // processes)
    with database(backend, pg_url) as url:
        port = free_port()
        app = gateway_app(url, f"http://127.0.0.1:{port}")
        edit_app = make_app_client(app, scope="edit:face", name="Bench App")
        register_algorithm(app, FILING, operations=("face_swap",))
        consents = [make_consent(app, edit_app.client_id) for _ in range(CONSENTS)]
        media = [{"role": "source", "sha256": hashlib.sha256(b"bench").hexdigest()}]
        bodies = [{"operation": "face_swap", "algorithm": FILING, "consents": [c], "media": media}
                  for c in consents]
        with gateway_server(url, port) as server:
            token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            requests = [("POST", "/v1/decisions", headers, body) for body in bodies]
            gateway = load(server.url, requests, processes=processes, threads=threads, seconds=seconds, expect=201)
        with wsgi_server("bench.bare_app:app", free_port()) as bare_server:
            bare = load(bare_server.url, requests, processes=processes, threads=threads, seconds=seconds,
                        expect=201)
    return {"backend": backend, "gateway": gateway.summary(), "bare_flask": bare.summary(),
            "ratio": round(gateway.throughput / bare.throughput, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [bench_backend(b, args.pg_url, args.seconds, args.clients) for b in backends]
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                      "clients": args.clients, "seconds": args.seconds, "results": results}, indent=2))
    print()
    print("| database | gateway req/s | p50 ms | p99 ms | bare Flask req/s | p50 ms | p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        g, b = r["gateway"], r["bare_flask"]
        print(f"| {r['backend']} | {g['rps']} | {g['p50_ms']} | {g['p99_ms']} | {b['rps']} | {b['p50_ms']} | "
              f"{b['p99_ms']} | {r['ratio']} |")


if __name__ == "__main__":
    main()
