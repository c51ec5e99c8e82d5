"""Real gateway processes appending, killed with SIGKILL mid-load, and two of them at once.

Every child is a real app (``tests/gateway/auditing/appender.py``) on the test's database. A child prints a
line only after its transaction committed, so the lines read from its stdout are exactly what must
survive; nothing here relies on timing for correctness. Where the kill lands is random (the seed is in
every failure message): the only sleep is a random delay *before* a kill, to scatter kills across
commits, sequencer batches and the gaps between them.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit import log as audit_log
from audit.models import Entry, QueuedEntry, Shard
from audit.sequencer import ADVISORY_LOCK_KEY
from audit.verify import verify_bundle
from gateway.auditing import runner as audit_runner
from gateway.cli import main
from gateway.core.clock import utcnow
from gateway.core.db import db
from tests.conftest import ISSUER, MASTER_KEY
from tests.gateway.auditing.anchors import gateway_keys

ROOT = Path(__file__).resolve().parents[3]


class Child:
    """One gateway process running ``appender.py``; its committed lines are collected in ``lines``."""

    def __init__(self, database_url: str, *args: str) -> None:
        env = {
            **os.environ,
            "CONSENT_GATEWAY_DATABASE_URL": database_url,
            "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
            "CONSENT_GATEWAY_ISSUER": ISSUER,
            "CONSENT_GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
            "CONSENT_GATEWAY_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.auditing.appender", *args],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        assert self._readline() == "ready", self._failure("child did not start")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def read(self, n: int) -> None:
        """Block until ``n`` more committed lines arrived (or the child ended)."""
        for _ in range(n):
            line = self._readline()
            if not line:
                return
            self.lines.append(line)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()
        assert self.proc.returncode == -signal.SIGKILL

    def finish(self) -> None:
        """Wait for the end and collect every line the child managed to write before it."""
        out, err = self.proc.communicate(timeout=240)
        self.lines.extend(line for line in out.splitlines() if line)
        self.stderr = err

    def _failure(self, what: str) -> str:
        self.proc.kill()
        return f"{what}: {self.proc.communicate()[1]}"


def _recover(app: Flask, now: datetime) -> None:
    """What a restarted gateway does: wait until no dead process still leads, then sequence the rest."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # The killed child's backend holds the sequencer's advisory lock until PostgreSQL notices the
            # closed socket; block on the lock (not on a timer) until it is gone.
            with db.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        audit_runner.seal(app, now)


def _markers(app: Flask) -> Counter[str]:
    with app.app_context():
        bodies = db.session.scalars(select(Entry.body).where(Entry.action == "test.crash"))
        return Counter(json.loads(body)["detail"]["marker"] for body in bodies)


def _assert_log_whole(app: Flask, tmp_path: Path, since: datetime, committed: list[str], *, attempted: set[str],
                      seed: int) -> None:
    """Every committed entry exactly once, nothing invented, gap-free shards, and an export verifies."""
    where = f"(seed {seed})"
    with app.app_context():
        assert db.session.scalar(select(QueuedEntry.id).limit(1)) is None, f"queue not drained {where}"
        for shard in db.session.scalars(select(Shard)):
            seqs = list(db.session.scalars(select(Entry.seq).where(Entry.shard == shard.shard).order_by(Entry.seq)))
            assert seqs == list(range(shard.size)), f"gaps or extra entries in {shard.shard} {where}"
    present = _markers(app)
    assert not [m for m, n in present.items() if n > 1], f"duplicated entries {where}"
    assert set(present) <= attempted, f"entries nobody appended {where}"
    lost = [m for m in committed if m not in present]
    assert not lost, f"committed entries lost: {lost[:10]} {where}"
    bundle = tmp_path / f"bundle-{len(committed)}.zip"
    until = utcnow() + timedelta(seconds=1)
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", since.isoformat(),
                                                 "--until", until.isoformat(), "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    report = verify_bundle(bundle, keys=gateway_keys(app), jobs=1)
    assert report.ok, f"{report.render()} {where}"
    assert report.entries >= len(committed)


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("CRASH_SEED", random.randrange(1 << 32)))


def test_sigkill_during_appends_loses_no_committed_entry(app: Flask, database_url: str, tmp_path: Path,
                                                         seed: int) -> None:
    rng = random.Random(seed)
    now = utcnow()
    committed: list[str] = []
    attempted: set[str] = set()
    for round_ in range(3):
        tag, count = f"r{round_}", 400
        attempted.update(f"{tag}-{i}" for i in range(count))
        child = Child(database_url, "append", tag, str(count), now.isoformat())
        child.go()
        child.read(rng.randrange(20, 200))
        # Scatter the kill: inside a request's transaction, its commit, the after-commit sequencing, or
        # between transactions. Correctness never depends on this delay.
        _pause(rng.uniform(0, 0.03))
        child.kill()
        assert len(child.lines) < count, f"the kill came after the load ended (seed {seed})"
        committed += child.lines
        _recover(app, utcnow())
        _assert_log_whole(app, tmp_path, now, committed, attempted=attempted, seed=seed)


def test_sigkill_inside_the_sequencer(app: Flask, database_url: str, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    now = utcnow()
    attempted: set[str] = set()
    for round_ in range(2):
        markers = [f"q{round_}-{i}" for i in range(12_000)]
        attempted.update(markers)
        _queue_without_sequencing(app, markers, now)
        child = Child(database_url, "sequence", "500", utcnow().isoformat())
        child.go()
        child.read(rng.randrange(1, 10))
        # Each batch is one transaction of hundreds of inserts (tens of milliseconds); a random point in it
        # is where the kill goes.
        _pause(rng.uniform(0, 0.05))
        child.kill()
        assert "done" not in child.lines, f"the sequencer finished before the kill (seed {seed})"
        with app.app_context():
            left = len(list(db.session.scalars(select(QueuedEntry.id))))
        assert left > 0, f"nothing was left queued (seed {seed})"
        _recover(app, utcnow())
        # Every queued entry was committed (by the test) before the child started.
        _assert_log_whole(app, tmp_path, now, sorted(attempted), attempted=attempted, seed=seed)


def test_two_processes_append_concurrently(app: Flask, database_url: str, tmp_path: Path) -> None:
    now = utcnow()
    count = 300
    children = [Child(database_url, "append", tag, str(count), now.isoformat()) for tag in ("a", "b")]
    for child in children:
        child.go()
    for child in children:
        child.finish()
        assert child.proc.returncode == 0, child.stderr
        assert len(child.lines) == count
    _recover(app, utcnow())
    committed = children[0].lines + children[1].lines
    _assert_log_whole(app, tmp_path, now, committed, attempted=set(committed), seed=0)
    with app.app_context():
        bodies = db.session.scalars(select(Entry.body).where(Entry.action == "test.crash")
                                    .order_by(Entry.shard, Entry.seq))
        order = [json.loads(body)["detail"]["marker"][0] for body in bodies]
    # The two loads really overlapped: their entries interleave in the log.
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    assert switches > 1, "the two processes did not run concurrently"


@contextmanager
def _unsequenced(app: Flask) -> Iterator[Session]:
    with app.app_context():
        engine = db.engine
    # Outside an app context the after-commit hook has no app to sequence with, exactly like a
    # process that dies right after its commit: the entries stay queued for whoever leads next.
    with Session(engine) as session:
        yield session
        session.commit()


def _queue_without_sequencing(app: Flask, markers: list[str], now: datetime) -> None:
    with _unsequenced(app) as session:
        for marker in markers:
            audit_log.append(session, {"action": "test.crash", "actor": {"type": "system", "id": "test"},
                                       "detail": {"marker": marker}}, now)


def _pause(seconds: float) -> None:
    # A random delay only decides *where* the kill lands; see the module docstring.
    time.sleep(seconds)
