"""Audit appends per second and integration lag, on SQLite and PostgreSQL, against a plain-INSERT baseline.

    python bench/audit_append.py [--backends sqlite,postgresql] [--pg URL] [--seconds S]
                                 [--processes N] [--threads T]

For each backend, in one throw-away database (SQLite file in a temp dir; PostgreSQL database created on
the loopback server named by --pg and dropped afterwards), each phase runs for --seconds:

  baseline   one row of the same size per transaction into a trivial table (id, body), through the same
             engine and unit of work as the gateway: what the database gives a single-row commit;
  audit      ``audit_trail.record`` of a realistic decision entry per transaction, as a request does:
             the queue insert commits with the request and, with ``AUDIT_BACKGROUND=True`` as ``serve``
             runs it, wakes the process's audit thread, which sequences in batches (and ticks);

each with 1 writer, T threads in one process, and N processes (each its own app, like gunicorn workers).
Integration lag is the time from the commit of the queued entry (stamped by an ``after_commit`` listener)
to the moment a separate poller process (every 5 ms) first sees it in ``audit_entries``. Target: p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _audit_db import (
    DEFAULT_PG,
    check_template,
    decision_fields,
    machine,
    make_app,
    percentile,
    queued_body,
    temp_database,
)
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, create_engine, event, insert, text
from sqlalchemy.orm import Session

POLL_SECONDS = 0.005
GRACE_SECONDS = 10.0
_clock = time.monotonic  # CLOCK_MONOTONIC is system-wide on Linux: comparable across processes

# The baseline's table exists only in the benchmark's throw-away database.
_metadata = MetaData()
baseline_table = Table("bench_baseline", _metadata, Column("id", Integer, primary_key=True),
                       Column("body", LargeBinary))


@dataclass
class WriterResult:
    commits: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    committed_at: dict[str, float] = field(default_factory=dict)


def _stamp(session: Session) -> None:
    marker = session.info.pop("bench_marker", None)
    if marker is not None:
        session.info["bench_stamps"][marker] = _clock()


def _write(app: Any, mode: str, name: str, deadline: float, result: WriterResult) -> None:
    from gateway.auditing.trail import AuditJournal, Party
    from gateway.core.clock import utcnow
    from gateway.core.db import db

    actor = Party("client", "cli_bench")
    i = 0
    started = _clock()
    with app.app_context():
        while (now := _clock()) < deadline:
            marker = f"{name}-{i}"
            with db.unit_of_work() as session:
                session.info["bench_stamps"] = result.committed_at
                if mode == "audit":
                    session.info["bench_marker"] = marker
                    AuditJournal(session, utcnow()).record("decision.allowed", actor, detail={"m": marker},
                                                            **decision_fields(i))
                else:
                    session.execute(insert(baseline_table).values(body=queued_body(i, "2025-01-01T00:00:00Z")))
            result.latencies.append(_clock() - now)
            i += 1
    result.commits = i
    result.seconds = _clock() - started


def _process_writer(url: str, mode: str, threads: int, name: str, seconds: float,  # noqa: PLR0917
                    barrier: Barrier, stop: Event, out: Any) -> None:
    # Positional arguments: multiprocessing.Process passes them so.
    app = make_app(url, AUDIT_BACKGROUND=(mode == "audit"))
    # First among the after_commit listeners (insert=True): the moment the queued entry is durable.
    event.listen(Session, "after_commit", _stamp, insert=True)
    barrier.wait()
    deadline = _clock() + seconds
    results = [WriterResult() for _ in range(threads)]
    workers = [threading.Thread(target=_write, args=(app, mode, f"{name}t{k}", deadline, results[k]))
               for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    committed_at: dict[str, float] = {}
    for r in results:
        committed_at.update(r.committed_at)
    # Plain values: classes of a spawned __main__ do not unpickle in the parent.
    out.put((sum(r.commits for r in results), max(r.seconds for r in results),
             [x for r in results for x in r.latencies], committed_at))
    # Stay alive (the ticker keeps integrating leftovers) until the poller has seen every entry.
    stop.wait(GRACE_SECONDS + seconds)


def _poll(url: str, label: str, barrier: Barrier, stop: Event, out: Any) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    # Only this phase's markers: the log holds the earlier phases' entries too.
    marker = re.compile(rb'"m":"(' + re.escape(label.encode()) + rb'[^"]+)"')
    seen: dict[str, float] = {}
    barrier.wait()
    shard, seq = "", -1
    query = text("SELECT shard, seq, body FROM audit_entries WHERE shard > :s OR (shard = :s AND seq > :q) "
                 "ORDER BY shard, seq")
    with engine.connect() as conn:
        while not stop.is_set():
            rows = conn.execute(query, {"s": shard, "q": seq}).all()
            moment = _clock()
            for shard, seq, body in rows:  # noqa: B007 - the last row's position is where the next poll starts
                found = marker.search(bytes(body))
                if found:
                    seen.setdefault(found.group(1).decode(), moment)
            if rows:
                out.put(len(seen))
            time.sleep(POLL_SECONDS)
    out.put(seen)
    engine.dispose()


@dataclass
class Phase:
    commits: int
    seconds: float
    latencies: list[float]
    lags: list[float]
    unseen: int

    @property
    def rate(self) -> float:
        return self.commits / self.seconds if self.seconds else 0.0


def run_phase(url: str, mode: str, processes: int, threads: int, *, seconds: float, label: str) -> Phase:
    ctx = multiprocessing.get_context("spawn")
    with_poller = mode == "audit"
    barrier = ctx.Barrier(processes + (1 if with_poller else 0))
    stop = ctx.Event()
    results, seen_out = ctx.Queue(), ctx.Queue()
    # Markers name the phase too: the poller reads the whole log, earlier phases included.
    children = [ctx.Process(target=_process_writer, args=(url, mode, threads, f"{label}p{k}", seconds, barrier,
                                                          stop, results)) for k in range(processes)]
    if with_poller:
        children.append(ctx.Process(target=_poll, args=(url, f"{label}p", barrier, stop, seen_out)))
    for child in children:
        child.start()
    writers = [results.get(timeout=seconds + 120) for _ in range(processes)]
    committed: dict[str, float] = {}
    for w in writers:
        committed.update(w[3])
    seen: dict[str, float] = {}
    if with_poller:
        grace_end = time.monotonic() + GRACE_SECONDS
        try:
            while time.monotonic() < grace_end and seen_out.get(timeout=GRACE_SECONDS) < len(committed):
                pass
        except queue.Empty:
            pass  # nothing new within the grace period: what is unseen is reported as such
        stop.set()
        while not isinstance(got := seen_out.get(timeout=60), dict):
            pass
        seen = got
    stop.set()
    for child in children:
        child.join(timeout=60)
    lags = [seen[m] - t for m, t in committed.items() if m in seen]
    return Phase(commits=sum(w[0] for w in writers), seconds=max(w[1] for w in writers),
                 latencies=[x for w in writers for x in w[2]], lags=lags,
                 unseen=len([m for m in committed if m not in seen]) if with_poller else 0)


def _ms(value: float) -> str:
    return f"{value * 1000:,.1f} ms"


def bench_backend(backend: str, args: argparse.Namespace) -> None:
    with temp_database(backend, args.pg) as url:
        engine = create_engine(url)
        _metadata.create_all(engine)
        engine.dispose()
        make_app(url)  # the signing key, created once
        print(f"\n== {backend} ==")
        shapes = [("1 writer", 1, 1), (f"{args.threads} threads, 1 process", 1, args.threads),
                  (f"{args.processes} processes", args.processes, 1)]
        for number, (label, processes, threads) in enumerate(shapes):
            base = run_phase(url, "baseline", processes, threads, seconds=args.seconds, label=f"b{number}")
            audit = run_phase(url, "audit", processes, threads, seconds=args.seconds, label=f"a{number}")
            print(f"{label:<22} baseline INSERT {base.rate:>8,.0f}/s (p50 {_ms(percentile(base.latencies, 50))}, "
                  f"p99 {_ms(percentile(base.latencies, 99))}) | audit append {audit.rate:>8,.0f}/s "
                  f"(p50 {_ms(percentile(audit.latencies, 50))}, p99 {_ms(percentile(audit.latencies, 99))}) | "
                  f"ratio {audit.rate / base.rate:.2f}")
            print(f"{'':<22} integration lag over {len(audit.lags):,} entries: p50 "
                  f"{_ms(percentile(audit.lags, 50))}, p99 {_ms(percentile(audit.lags, 99))}, max "
                  f"{_ms(max(audit.lags, default=float('nan')))} (poll every {_ms(POLL_SECONDS)}); "
                  f"not integrated after {GRACE_SECONDS:.0f} s: {audit.unseen}; "
                  f"p99 target 1 s {'met' if percentile(audit.lags, 99) <= 1.0 and not audit.unseen else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default=DEFAULT_PG, help="loopback PostgreSQL admin URL (a database is created)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    check_template()
    print(f"machine: {machine()}")
    print(f"phases of {args.seconds:.0f} s; one entry (~500 bytes) per transaction")
    for backend in args.backends.split(","):
        bench_backend(backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
