"""Reading a consent and asking for one, over HTTP on loopback, against bare Flask endpoints served the same way.

    python bench/consents.py [--backend sqlite|postgresql|both] [--seconds 10] [--clients 16]
                             [--py-spy DIR [--py-spy-cpu]] [--pg-url postgresql+psycopg://…]

The harness of ``bench/decisions.py`` (production server, 16 closed-loop clients, CPU per request per
process) for ``GET /v1/consents/{id}`` (64 active consents of the calling app, read in turn) and
``POST /v1/consent-requests`` (a new request for one of 64 contacts each time: a pending request row
and its audit entry committed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    Request,
    Run,
    Server,
    database,
    free_port,
    gateway_app,
    gateway_server,
    load_bare,
    load_gateway,
    report,
)

from tests.factories import make_app_client, make_consent

CONSENTS = 64


@dataclass(frozen=True)
class Workload:
    """A serving gateway with ``count`` active consents of one app, and the requests that read and ask."""

    url: str  # the database's
    server: Server
    reads: list[Request]  # GET /v1/consents/{id}, one per consent
    asks: list[Request]  # POST /v1/consent-requests, one contact each


@contextlib.contextmanager
def consent_workload(backend: str, pg_url: str, count: int) -> Iterator[Workload]:
    """The gateway of ``bench/consents.py`` and ``bench/fides_compare.py``, on a fresh database."""
    with database(backend, pg_url) as url:
        port = free_port()
        app = gateway_app(url, f"http://127.0.0.1:{port}")
        caller = make_app_client(app, scope="consent:read consent:write", name="Bench App")
        consents = [make_consent(app, caller.client_id) for _ in range(count)]
        with gateway_server(url, port) as server:
            token = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(caller.client_id, caller.secret)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            yield Workload(url, server, [("GET", f"/v1/consents/{c}", headers, None) for c in consents],
                           [("POST", "/v1/consent-requests", headers,
                             {"subject": {"contact": f"bench{i}@example.com"}, "operations": ["face_swap"],
                              "purpose": "benchmark"}) for i in range(count)])


def bench_backend(backend: str, pg_url: str, run: Run) -> list[dict[str, Any]]:
    with consent_workload(backend, pg_url, CONSENTS) as work:
        measured = [("GET /v1/consents/{id}", work.reads, 200, "read"),
                    ("POST /v1/consent-requests", work.asks, 201, "ask")]
        gateway = {endpoint: load_gateway(work.server, work.url, backend, requests, run, expect=expect, name=name)
                   for endpoint, requests, expect, name in measured}
    # The bare endpoints run once the gateway has stopped, as in bench/decisions.py.
    results = []
    for endpoint, requests, expect, _ in measured:
        bare = load_bare(requests, run, expect=expect)
        results.append({"backend": backend, "endpoint": endpoint, "gateway": gateway[endpoint].summary(),
                        "bare_flask": bare.summary(),
                        "ratio": round(gateway[endpoint].throughput / bare.throughput, 3)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="record each gateway worker with py-spy (raw collapsed stacks) into DIR")
    parser.add_argument("--py-spy-cpu", action="store_true",
                        help="sample only threads on the CPU (default: wall time, waiting included)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    run = Run(seconds=args.seconds, clients=args.clients, profile=args.py_spy, profile_idle=not args.py_spy_cpu)
    loadavg_before = os.getloadavg()
    results = [r for b in backends for r in bench_backend(b, args.pg_url, run)]
    report(results, loadavg_before=loadavg_before)


if __name__ == "__main__":
    main()
