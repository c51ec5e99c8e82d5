"""A one-million-entry month: bulk sequencing, export with peak memory, and its purge while appends go on.

    python bench/audit_export_purge.py [--backends sqlite,postgresql] [--pg URL] [--entries N]
                                       [--writers W] [--window S] [--skip-purge]

For each backend, in a throw-away database (PostgreSQL: created on the loopback server named by --pg):

1. Fill one month, 40 months back (so that the default three-year retention purges it), with N realistic
   decision entries: a bulk insert into ``audit_queue`` (what N committed requests leave behind), then
   the real sequencer (``audit.sequencer.integrate``) in batches of 20,000; the month is then closed.
2. Export it with the real CLI in a child process, ``consent-gateway audit export --since --until -o``,
   and read that process's peak RSS from the kernel (``wait4``). Baseline: the same command exporting
   an empty range. Target: <= 150 MB. The bundle is then checked with ``python -m audit.verify``.
3. Purge it with ``consent-gateway retention purge`` (PostgreSQL: detach and drop the month's partition;
   SQLite: delete its rows) while W writer processes keep appending, one entry per transaction. Reported:
   the purge's wall time, and appends/s and the slowest append in the window before the purge and
   during it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _audit_db import (
    DEFAULT_PG,
    ISSUER,
    MASTER_KEY,
    check_template,
    decision_fields,
    machine,
    make_app,
    queued_body,
    rfc3339,
    temp_database,
)
from sqlalchemy import func, insert, select

from audit import sequencer
from audit.models import Entry, QueuedEntry
from gateway.auditing import runner as audit_runner
from gateway.cli import main as cli_main
from gateway.core.clock import utcnow
from gateway.core.db import db

CLI = str(Path(sys.executable).with_name("consent-gateway"))
BATCH = 20_000
QUEUE_CHUNK = 10_000


def _months_back(now: datetime, months: int) -> datetime:
    index = now.year * 12 + now.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def fill_month(app: Any, start: datetime, entries: int) -> None:
    end = _next_month(start)
    step = (end - start - timedelta(seconds=2)) / entries
    started = time.perf_counter()
    with app.app_context():
        table = QueuedEntry.metadata.tables[QueuedEntry.__tablename__]
        for first in range(0, entries, QUEUE_CHUNK):
            rows = []
            for i in range(first, min(entries, first + QUEUE_CHUNK)):
                moment = start + timedelta(seconds=1) + step * i
                rows.append({"ts": moment, "body": queued_body(i, rfc3339(moment))})
            with db.unit_of_work() as session:
                session.connection().execute(insert(table), rows)
    queued = time.perf_counter() - started
    print(f"queued {entries:,} entries in {queued:.1f} s ({entries / queued:,.0f}/s, bulk insert)")

    started = time.perf_counter()
    rules = sequencer.Policy(checkpoint_every=1000, checkpoint_seconds=60, batch=BATCH)
    # The sequencer's clock inside the month, so the shard's own entries fall in the exported range.
    moment = start + timedelta(seconds=1)
    with app.app_context():
        while True:
            with db.unit_of_work() as session:
                done = sequencer.integrate(session, audit_runner.note_signer(session, ISSUER), ISSUER, moment, rules)
            if done == 0:
                break
    sequenced = time.perf_counter() - started
    print(f"sequenced {entries:,} entries in {sequenced:.1f} s ({entries / sequenced:,.0f}/s, batches of "
          f"{BATCH:,}, a signed checkpoint per batch)")
    with app.app_context():
        audit_runner.tick(app, utcnow())  # the month has ended: close it with its final checkpoint
        count = db.session.scalar(select(func.count()).select_from(Entry).where(Entry.shard == start.strftime("%Y-%m")))
    print(f"shard {start:%Y-%m}: {count:,} entries (shard.opened included), closed")


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "CONSENT_GATEWAY_DATABASE_URL": url, "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
            "CONSENT_GATEWAY_ISSUER": ISSUER, "CONSENT_GATEWAY_SECRET_KEY": "bench-secret",
            "CONSENT_GATEWAY_LOG_LEVEL": "WARNING"}


# Peak RSS is a high-water mark that survives fork and exec: a child forked from this (large) process
# would report this process's size. So a small interpreter forks the command and reports its child's.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nmaxrss_kb={usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], url: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (from the kernel, of the command alone) and stdout of a command."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], env=_env(url), capture_output=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()}")
    rss_kb = int(done.stderr.decode().rsplit("maxrss_kb=", 1)[1].split()[0])
    return seconds, rss_kb / 1024, done.stdout.decode()


def export(url: str, start: datetime, entries: int, tmp: Path) -> None:
    end = _next_month(start)
    bundle = tmp / "bundle.zip"
    empty = tmp / "empty.zip"
    base_seconds, base_rss, _ = run_measured(
        [CLI, "audit", "export", "--since", rfc3339(end + timedelta(days=400)),
         "--until", rfc3339(end + timedelta(days=401)), "-o", str(empty)], url)
    seconds, rss, _ = run_measured(
        [CLI, "audit", "export", "--since", rfc3339(start), "--until", rfc3339(end), "-o", str(bundle)], url)
    size = bundle.stat().st_size / 1e6
    print(f"export: {entries:,} entries in {seconds:.1f} s ({entries / seconds:,.0f} entries/s), bundle "
          f"{size:,.1f} MB; peak RSS {rss:,.0f} MB (target <= 150 MB: {'met' if rss <= 150 else 'NOT met'}); "
          f"same CLI exporting an empty range: {base_rss:,.0f} MB in {base_seconds:.1f} s "
          f"(export's own growth {rss - base_rss:,.0f} MB)")
    verify_seconds, verify_rss, out = run_measured(
        # Self-consistency is what is measured here (the bench made the keys itself); no trust anchor.
        [sys.executable, "-m", "audit.verify", str(bundle), "--jobs", str(os.cpu_count() or 1), "--allow-untrusted"],
        url)
    verdict = out.strip().splitlines()[-1] if out.strip() else "(no output)"
    print(f"offline verify of the bundle: {verify_seconds:.1f} s, peak RSS {verify_rss:,.0f} MB: {verdict}")


def _writer(url: str, barrier: Barrier, stop: Event, out: Any) -> None:
    from gateway.auditing.trail import AuditJournal, Party

    app = make_app(url, AUDIT_BACKGROUND=True)
    actor = Party("client", "cli_bench")
    stamps: list[tuple[float, float]] = []
    barrier.wait()
    i = 0
    with app.app_context():
        while not stop.is_set():
            begun = time.monotonic()
            with db.unit_of_work() as session:
                AuditJournal(session, utcnow()).record("decision.allowed", actor, **decision_fields(i))
            stamps.append((begun, time.monotonic()))
            i += 1
    out.put(stamps)


def _window(stamps: list[tuple[float, float]], begin: float, end: float) -> tuple[float, float]:
    """Appends/s finished in [begin, end), and the slowest append that overlapped the window (seconds)."""
    done = sum(1 for _s, e in stamps if begin <= e < end)
    slowest = max((e - s for s, e in stamps if e >= begin and s < end), default=0.0)
    return done / (end - begin), slowest


def purge_under_load(app: Any, url: str, writers: int, window: float) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(writers + 1)
    stop = ctx.Event()
    out = ctx.Queue()
    children = [ctx.Process(target=_writer, args=(url, barrier, stop, out)) for _ in range(writers)]
    for child in children:
        child.start()
    barrier.wait()
    time.sleep(1.0)  # let every writer reach its steady state before the "before" window opens
    before = time.monotonic()
    time.sleep(window)
    # The real command, in this process: its wall time is the purge's, not an interpreter's start-up.
    purge_start = time.monotonic()
    result = app.test_cli_runner().invoke(cli_main, ["retention", "purge", "--json"])
    purge_end = time.monotonic()
    seconds = purge_end - purge_start
    if result.exit_code != 0:
        raise SystemExit(result.output)
    purged = json.loads(result.output[result.output.index("{"):])
    time.sleep(min(window, 3.0))
    stop.set()
    stamps: list[tuple[float, float]] = []
    for _ in children:
        try:
            stamps += out.get(timeout=120)
        except queue.Empty:
            break
    for child in children:
        child.join(timeout=60)
    rate_before, slow_before = _window(stamps, before, purge_start)
    rate_during, slow_during = _window(stamps, purge_start, purge_end)
    shards = ", ".join(f"{p['shard']} ({p['entries']:,} entries)" for p in purged["shards"])
    print(f"purge of {shards} while {writers} writer processes append: {seconds:.2f} s")
    print(f"appends before: {rate_before:,.0f}/s (slowest {slow_before * 1000:,.0f} ms); during the purge: "
          f"{rate_during:,.0f}/s (slowest {slow_during * 1000:,.0f} ms); ratio during/before "
          f"{rate_during / rate_before if rate_before else float('nan'):.2f}")


def bench_backend(backend: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend} ==")
    with temp_database(backend, args.pg, args.tmp) as url:
        app = make_app(url)
        start = _months_back(utcnow(), 40)
        fill_month(app, start, args.entries)
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            export(url, start, args.entries, Path(tmp))
        if not args.skip_purge:
            purge_under_load(app, url, args.writers, args.window)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default=DEFAULT_PG, help="loopback PostgreSQL admin URL (a database is created)")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=2, help="appending processes during the purge")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of appends measured before the purge")
    parser.add_argument("--skip-purge", action="store_true")
    parser.add_argument("--tmp", type=Path, help="directory for the SQLite file and the bundle")
    args = parser.parse_args()
    check_template()
    print(f"machine: {machine()}")
    for backend in args.backends.split(","):
        bench_backend(backend, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
