"""Where one decision's CPU goes, stage by stage, in-process (no HTTP server, no profiler overhead).

    python bench/decision_stages.py [--backend sqlite|postgresql|both] [--requests 3000] [--threads N ...]

The gateway app is called as gunicorn calls it (a WSGI environ per request, one request at a time) with
the same 64 consents as ``bench/decisions.py``; the bare Flask endpoint the same way. Each stage is
timed by wrapping the function that does it with a wall-clock timer (one request at a time, so wall
time is CPU time plus the database's own time; on PostgreSQL that includes the round trips). Beside them,
the bare Flask endpoint and ``bench/floor_app.py`` (the least a decision can cost) the same way. Stages
nest (indented). Audit sequencing is not included: in ``serve`` it runs on the ticker thread (see
``bench/decisions.py`` for its share under load).

Then the whole request again from 1, 2 and 4 threads at once (``--threads``): CPU (user and system) and
voluntary context switches per request. Same app, same requests: the difference is what threads cost
a gateway whose every database call lets go of the GIL.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from _harness import database, gateway_app

from tests.factories import make_app_client, make_consent, register_algorithm

CONSENTS = 64
FILING = "BENCH-0001"
# (label, module, function): the stages of a decision request, in the order it meets them.
STAGES = [
    ("before_request: request id, NUL check", None, None),
    ("authenticate (authlib + token read)", "gateway.auth.oauth", "authenticate"),
    ("  token read (first statement: session, connection)", "gateway.auth.oauth", "_bearer_token"),
    ("parse_body (JSON, pydantic)", "gateway.http.api.decisions", "parse_body"),
    ("make_decision", "gateway.decisions.service", "make_decision"),
    ("  facts read (consents + algorithm)", "gateway.decisions.service", "_read_facts"),
    ("  sign the ticket (JCS + Ed25519)", "gateway.decisions.service", "_sign_ticket"),
    ("  audit entry built (JCS)", "gateway.decisions.service", "_built_ahead"),
    ("  take the use (conditional UPDATE; SQLite: BEGIN IMMEDIATE)", "gateway.decisions.service", "enforce_views"),
    ("  insert the decision and its queue row", "gateway.decisions.service", "_insert_allowed"),
    ("commit (the view commits before rendering)", "gateway.http.api.decisions", "commit_early"),
    ("after_request: commit (nothing left to commit)", None, None),
    ("after_request: metrics, access log", None, None),
]


def _environ(path: str, headers: dict[str, str], payload: bytes) -> dict[str, Any]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
               "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(payload)),
               "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "wsgi.input": io.BytesIO(payload)}
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call(app: Any, headers: dict[str, str], bodies: list[bytes], n: int) -> float:
    """Seconds per request over ``n`` requests."""
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        statuses.append(status)

    started = time.perf_counter()
    for i in range(n):
        out: Iterable[bytes] = app(_environ("/v1/decisions", headers, bodies[i % len(bodies)]), start_response)
        b"".join(out)
        getattr(out, "close", lambda: None)()
    elapsed = (time.perf_counter() - started) / n
    assert statuses[-1].startswith("201"), statuses[-1]
    return elapsed


def _timed(spent: dict[str, float], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started
    return wrapper


def threaded(app: Any, headers: dict[str, str], bodies: list[bytes], requests: int,
             threads: int) -> dict[str, float]:
    """The whole request, called from ``threads`` threads at once: CPU and context switches per request.

    Nothing else differs from the one-thread figure, so the difference is what threads cost: every
    database call lets go of the GIL, and with another thread waiting for it each one is a switch.
    """
    each = max(1, requests // threads)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    workers = [threading.Thread(target=_call, args=(app, headers, bodies, each)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    done = each * threads
    return {"threads": threads, "requests_per_second": round(done / elapsed, 1),
            "user_us_per_request": round((after.ru_utime - before.ru_utime) / done * 1e6, 1),
            "system_us_per_request": round((after.ru_stime - before.ru_stime) / done * 1e6, 1),
            "voluntary_switches_per_request": round((after.ru_nvcsw - before.ru_nvcsw) / done, 1)}


def _floor(url: str, headers: dict[str, str], bodies: list[bytes], requests: int) -> tuple[float, float]:
    """``bench/floor_app.py`` on the same database, as a Flask view and with no framework."""
    import importlib

    os.environ["FLOOR_DATABASE_URL"] = url
    floor_app = importlib.reload(importlib.import_module("floor_app"))  # it reads the URL as it loads
    fronts = (floor_app.app, floor_app.wsgi)
    for served in fronts:
        _call(served, headers, bodies, 300)
    # Interleaved in tenths, so neither front is always measured on the warmer database.
    spent = [0.0, 0.0]
    for _ in range(10):
        for index, served in enumerate(fronts):
            spent[index] += _call(served, headers, bodies, max(1, requests // 10)) / 10
    floor_app.close()
    return spent[0], spent[1]


def stages(backend: str, pg_url: str, requests: int, threads: tuple[int, ...] = ()) -> dict[str, Any]:
    import importlib

    import bare_app

    spent: dict[str, float] = defaultdict(float)
    for label, module_name, name in STAGES:
        if module_name is not None:
            module = importlib.import_module(module_name)
            setattr(module, name, _timed(spent, label, getattr(module, name)))
    with database(backend, pg_url) as url:
        app = gateway_app(url, "http://127.0.0.1:1")
        # As under `serve`, a commit only wakes the sequencer; nothing drains here (no ticker running).
        app.extensions["consent_gateway.audit_wake"] = threading.Event()
        for key, hooks in app.before_request_funcs.items():
            app.before_request_funcs[key] = [_timed(spent, STAGES[0][0], hook) for hook in hooks]
        for key, hooks in app.after_request_funcs.items():
            app.after_request_funcs[key] = [
                _timed(spent, "after_request: commit (nothing left to commit)" if "_commit" in hook.__qualname__
                       else "after_request: metrics, access log", hook) for hook in hooks]
        edit_app = make_app_client(app, scope="edit:face", name="Bench App")
        register_algorithm(app, FILING, operations=("face_swap",))
        consents = [make_consent(app, edit_app.client_id) for _ in range(CONSENTS)]
        client = app.test_client()
        token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                            auth=(edit_app.client_id, edit_app.secret)).get_json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        media = [{"role": "source", "sha256": hashlib.sha256(b"bench").hexdigest()}]
        bodies = [json.dumps({"operation": "face_swap", "algorithm": FILING, "consents": [c], "media": media})
                  .encode() for c in consents]
        _call(app, headers, bodies, 300)
        _call(bare_app.app, headers, bodies, 300)
        spent.clear()
        cpu = time.process_time()
        per_request = _call(app, headers, bodies, requests)
        cpu_per_request = (time.process_time() - cpu) / requests
        measured = {label: round(spent[label] / requests * 1e6, 1) for label, _, _ in STAGES}
        bare = _call(bare_app.app, headers, bodies, requests)
        floor, floor_wsgi = _floor(url, headers, bodies, requests)
        # The stage timers stay wrapped; they cost the same in every thread count.
        by_threads = [threaded(app, headers, bodies, requests, n) for n in threads]
    return {"backend": backend, "us_per_request": round(per_request * 1e6, 1),
            "cpu_us_per_request": round(cpu_per_request * 1e6, 1), "bare_us_per_request": round(bare * 1e6, 1),
            "floor_us_per_request": round(floor * 1e6, 1),
            "floor_wsgi_us_per_request": round(floor_wsgi * 1e6, 1),
            "stages_us": measured, "threads": by_threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2, 4], metavar="N",
                        help="also call the whole request from N threads at once (CPU and context switches "
                             "per request); none to skip")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    loadavg_before = os.getloadavg()
    results = [stages(b, args.pg_url, args.requests, tuple(args.threads)) for b in backends]
    print(json.dumps({"loadavg_before": loadavg_before, "loadavg_after": os.getloadavg(), "results": results},
                     indent=2))
    print()
    print("| stage | " + " | ".join(f"{r['backend']} µs" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for label, _, _ in STAGES:
        print(f"| {label} | " + " | ".join(str(r["stages_us"][label]) for r in results) + " |")
    print("| **whole request (app only, wall)** | " + " | ".join(str(r["us_per_request"]) for r in results) + " |")
    print("| whole request, CPU of this process | " + " | ".join(str(r["cpu_us_per_request"]) for r in results)
          + " |")
    print("| bare Flask endpoint (app only) | " + " | ".join(str(r["bare_us_per_request"]) for r in results) + " |")
    print("| the floor, bench/floor_app.py (app only) | "
          + " | ".join(str(r["floor_us_per_request"]) for r in results) + " |")
    print("| the floor with no framework (app only) | "
          + " | ".join(str(r["floor_wsgi_us_per_request"]) for r in results) + " |")
    if args.threads:
        print()
        print("| database | threads | req/s | user µs/request | system µs/request | voluntary switches/request |")
        print("|---|---|---|---|---|---|")
        for r in results:
            for t in r["threads"]:
                print(f"| {r['backend']} | {t['threads']} | {t['requests_per_second']} | {t['user_us_per_request']} | "
                      f"{t['system_us_per_request']} | {t['voluntary_switches_per_request']} |")


if __name__ == "__main__":
    main()
