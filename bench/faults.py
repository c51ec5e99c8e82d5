"""Faults under load: kill -9, a PostgreSQL restart, a hanging then dead upstream, a full upload disk.

    python bench/faults.py [--seconds 95] [--users 12] [--no-postgres-restart]
                           [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Runs the mix of bench/load.py against two gateway servers (one gunicorn worker each) on a fresh
PostgreSQL database, with uploads spooled on an 8 MiB tmpfs, and on a fixed schedule:

  kill -9 one worker of server A         (gunicorn starts a new one)
  SIGSTOP the reference upstream (hangs), then SIGKILL it (dies), then start it again
  fill the upload tmpfs, then free it
  restart PostgreSQL (pg_ctlcluster ... restart --mode fast)   -- the machine's shared cluster
  kill -9 server B entirely (arbiter and worker), then start it again on the same port

Then, without any repair: both servers ready, ``audit export`` + ``audit verify`` pass, exactly one
log entry per action the driver saw succeed (plus at most one for each request that got no answer),
no allow of a decision or an edit sent and answered while PostgreSQL was down, no allow after a
withdrawal, no upload file left behind. The PostgreSQL restart touches the machine's shared cluster,
so it is never part of the test suite; this script makes sure the cluster runs again when it ends.
Needs root (mount, pg_ctlcluster). Loopback only; everything stops at the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    NO_ANSWER,
    NOT_SENT,
    Deployment,
    Stats,
    deployment,
    fresh_database,
    reconcile,
    run_mix,
    wait_for,
)

from tests.e2e.cluster import gateway_process

UPLOAD_QUOTA = "8m"
UPSTREAM_TIMEOUT = 3
OBSERVE = 3.0  # seconds after an instantaneous fault whose requests are reported as "during" it
ALLOWS = {("decision", 201), ("edit", 200), ("decision_after_withdrawal", 201)}
PG_VERSION = next(iter(sorted(os.listdir("/etc/postgresql"))), "15") if os.path.isdir("/etc/postgresql") else "15"


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


class Schedule:
    """Runs the faults at fixed offsets from ``t0`` in a thread beside the load."""

    def __init__(self, dep: Deployment, uploads: Path, restart_postgres: bool, stack: contextlib.ExitStack) -> None:
        self.dep = dep
        self.uploads = uploads
        self.restart_postgres = restart_postgres
        self.stack = stack
        self.faults: list[Fault] = []
        self.t0 = time.perf_counter()

    def at(self, offset: float) -> None:
        delay = self.t0 + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # the schedule's own clock: faults land at fixed points of the run

    def run(self) -> None:
        self.at(6)
        self.kill_worker()
        self.at(14)
        self.upstream_hangs_then_dies()
        self.at(44)
        self.fill_uploads()
        if self.restart_postgres:
            self.at(60)
            self.restart_database()
        self.at(72)
        self.kill_server()

    def kill_worker(self) -> None:
        server = self.dep.servers[0]
        fault = Fault("kill -9 a worker of server A", time.perf_counter())
        pid = server.kill_worker()
        fault.notes["killed_pid"] = pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not server.worker_pids() or server.worker_pids() == [pid]):
            time.sleep(0.05)
        fault.notes["worker_back_after_s"] = round(time.perf_counter() - fault.started, 2)
        # The kill itself is instantaneous; what it did to requests shows in the next seconds.
        fault.ended = max(time.perf_counter(), fault.started + OBSERVE)
        self.faults.append(fault)

    def upstream_hangs_then_dies(self) -> None:
        hang = Fault(f"upstream hangs (SIGSTOP; gateway timeout {UPSTREAM_TIMEOUT} s)", time.perf_counter())
        os.kill(self.dep.upstream.pid, signal.SIGSTOP)
        self.at(22)
        hang.ended = time.perf_counter()
        self.faults.append(hang)
        dead = Fault("upstream dies (SIGKILL), restarted 6 s later", time.perf_counter())
        os.kill(self.dep.upstream.pid, signal.SIGKILL)
        self.dep.upstream.wait()
        self.at(28)
        dead.notes["restart_at_s"] = round(time.perf_counter() - dead.started, 2)
        log = (self.dep.workdir / "upstream-2.log").open("wb")
        self.stack.callback(log.close)
        self.dep.upstream = subprocess.Popen(self.dep.upstream_command, env=self.dep.env, stdout=log,
                                             stderr=subprocess.STDOUT)
        port = self.dep.upstream_command[self.dep.upstream_command.index("--port") + 1]
        wait_for(f"http://127.0.0.1:{port}/edit", self.dep.upstream)
        dead.ended = time.perf_counter()
        dead.notes["answering_again_at_s"] = round(dead.ended - dead.started, 2)
        self.faults.append(dead)

    def fill_uploads(self) -> None:
        fault = Fault(f"upload disk full ({UPLOAD_QUOTA} tmpfs), freed 8 s later", time.perf_counter())
        filler = self.uploads / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(bytes(1024 * 1024))
                handle.flush()
        fault.notes["free_bytes_while_full"] = os.statvfs(self.uploads).f_bavail * os.statvfs(self.uploads).f_frsize
        self.at(52)
        filler.unlink()
        fault.ended = time.perf_counter()
        self.faults.append(fault)

    def restart_database(self) -> None:
        fault = Fault("PostgreSQL restart (pg_ctlcluster --mode fast)", time.perf_counter())
        waiter = threading.Thread(target=lambda: pg_ctl("restart"), daemon=True)
        waiter.start()
        down = up = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = pg_ready()
            now = time.perf_counter()
            if not ready and down is None:
                down = now
            if ready and down is not None:
                up = now
                break
            time.sleep(0.02)  # sampling the database's state, at 50 Hz
        waiter.join(timeout=60)
        fault.notes["down_at"], fault.notes["up_at"] = down, up
        fault.notes["down_s"] = round((up or 0) - (down or 0), 2) if down and up else None
        fault.ended = up or time.perf_counter()
        self.faults.append(fault)

    def kill_server(self) -> None:
        server = self.dep.servers[1]
        fault = Fault("kill -9 all of server B (arbiter and worker), started again", time.perf_counter())
        for pid in [*server.worker_pids(), server.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.process.wait()
        port = int(server.url.rsplit(":", 1)[1])
        self.at(76)
        self.dep.servers[1] = self.stack.enter_context(
            gateway_process(self.dep.env, self.dep.workdir, workers=1, port=port))
        fault.ended = time.perf_counter()
        fault.notes["serving_again_after_s"] = round(fault.ended - fault.started, 2)
        self.faults.append(fault)


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", action, "--mode", "fast"],
                   check=False, capture_output=True, timeout=120)


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q", "-t", "1"], check=False).returncode == 0


@contextlib.contextmanager
def postgres_running_afterwards() -> Iterator[None]:
    try:
        yield
    finally:
        if not pg_ready():
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", "start"], check=False,
                           timeout=120)
        deadline = time.monotonic() + 60
        while not pg_ready() and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"PostgreSQL {'is running' if pg_ready() else 'IS NOT RUNNING'}", file=sys.stderr)


@contextlib.contextmanager
def tmpfs(folder: Path) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={UPLOAD_QUOTA}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def window_report(stats: Stats, fault: Fault, after: float = 10.0) -> dict[str, Any]:
    """What the requests sent during the fault got, and how soon each kind succeeded again after it."""
    during: dict[str, Counter[int]] = {}
    for kind, sent, answered, status in stats.events:
        if sent >= fault.started and answered <= fault.ended:
            during.setdefault(kind, Counter())[status] += 1
    recovered: dict[str, float | None] = {}
    for kind in ("decision", "edit", "consent_request", "portal_approve"):
        firsts = [sent for k, sent, _, status in stats.events
                  if k == kind and sent >= fault.ended and 200 <= status < 300]
        recovered[kind] = round(min(firsts) - fault.ended, 2) if firsts and min(firsts) - fault.ended < after else (
            round(min(firsts) - fault.ended, 2) if firsts else None)
    return {"fault": fault.name, "seconds": round(fault.ended - fault.started, 2),
            "during": {k: {_label(s): n for s, n in sorted(c.items())} for k, c in sorted(during.items())},
            "first_success_after_s": recovered, **fault.notes}


def _label(status: int) -> str:
    return {NOT_SENT: "refused_connection", NO_ANSWER: "no_answer"}.get(status, str(status))


def allows_while_database_down(stats: Stats, fault: Fault) -> int:
    down, up = fault.notes.get("down_at"), fault.notes.get("up_at")
    if down is None or up is None:
        return 0
    return sum(1 for kind, sent, answered, status in stats.events
               if (kind, status) in ALLOWS and sent >= down and answered <= up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=95.0)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--no-postgres-restart", action="store_true")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    seconds = min(max(args.seconds, 90.0), 300.0)  # the schedule's last fault ends at about 80 s
    database = f"cg_faults_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="cg-faults-") as folder, postgres_running_afterwards(), \
            tmpfs(Path(folder) / "uploads") as uploads, fresh_database(args.pg_url, database) as url, \
            deployment(url, Path(folder), servers=2, workers=1, UPLOAD_DIR=uploads,
                       UPSTREAM_TIMEOUT_SECONDS=UPSTREAM_TIMEOUT) as dep, contextlib.ExitStack() as stack:
        stats = Stats()
        schedule = Schedule(dep, uploads, not args.no_postgres_restart, stack)
        faults = threading.Thread(target=schedule.run, name="faults")
        faults.start()
        wall = asyncio.run(run_mix(dep, stats, seconds, args.users))
        faults.join()
        ready = {s.url: _ready(s.url) for s in dep.servers}
        leftovers = sorted(p.name for p in uploads.iterdir())
        result = {
            "seconds": round(wall, 1), "users": args.users,
            "faults": [window_report(stats, f) for f in schedule.faults],
            "allows_while_database_down": sum(allows_while_database_down(stats, f) for f in schedule.faults),
            "allows_after_withdrawal": stats.allows_after_withdrawal,
            "requests": sum(sum(c.values()) for c in stats.statuses.values()),
            "no_answer": sum(stats.unknown.values()),
            "server_errors": {k: {str(s): n for s, n in c.items() if s >= 500} for k, c in stats.statuses.items()
                              if any(s >= 500 for s in c)},
            "ready_afterwards": ready, "upload_files_left": leftovers,
        }
        result["audit"] = reconcile(dep, stats)
    report = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(report)
    print(report)
    verdict = (result["allows_while_database_down"] == 0 and result["allows_after_withdrawal"] == 0
               and all(ready.values()) and not leftovers and result["audit"]["verify_exit"] == 0
               and result["audit"]["one_entry_per_action"])
    print("\nall checks hold" if verdict else "\nSOME CHECK FAILED", file=sys.stderr)
    sys.exit(0 if verdict else 1)


def _ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    return False

if __name__ == "__main__":
    main()
