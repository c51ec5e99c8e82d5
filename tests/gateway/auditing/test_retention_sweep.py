"""A purge is decided in one transaction and its rows removed in short ones, so appends go on meanwhile.

The decision (purge record, shard marked purged, the audit entry) is what exports honour; the removal
can be cut short (a crash, a lock timeout on PostgreSQL) and is finished by the next run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from audit import retention
from audit.models import Entry, Shard
from audit.verify import verify_bundle
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.gateway.auditing.anchors import gateway_keys

OLD = datetime(2026, 1, 10, tzinfo=UTC)
NOW = datetime(2029, 3, 15, tzinfo=UTC)


def _append(app: Flask, n: int, now: datetime) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, detail={"i": i})


def _old_rows(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Entry).where(Entry.shard == "2026-01")) or 0


def _decide_purge(app: Flask) -> None:
    """The first step of `retention purge` alone: what a crash right after its commit leaves behind."""
    with app.app_context(), db.unit_of_work() as session:
        plans = retention.plan(session, NOW, retention.DEFAULT_RETENTION_DAYS)
        assert [p.shard for p in plans] == ["2026-01"]
        retention.purge(session, plans, NOW, retention.DEFAULT_RETENTION_DAYS)


def _export(app: Flask, tmp_path: Path) -> Path:
    out = tmp_path / "bundle.zip"
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", "2026-01-01T00:00:00Z",
                                                 "--until", "2029-03-16T00:00:00Z", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_a_decided_purge_is_honoured_before_and_after_its_rows_go(app: Flask, tmp_path: Path) -> None:
    _append(app, 12, OLD)
    _append(app, 1, NOW)  # closes 2026-01 with its final checkpoint
    _decide_purge(app)
    assert _old_rows(app) == 13, "deciding removes nothing yet"
    with freeze_time(NOW):
        report = verify_bundle(_export(app, tmp_path), keys=gateway_keys(app), jobs=1)
    assert report.ok, report.render()
    assert [p.shard for p in report.purged] == ["2026-01"]

    if app.config["DATABASE_URL"].startswith("sqlite"):
        # SQLite removes the rows a few at a time; each piece is its own short write transaction.
        pieces = []
        while True:
            with app.app_context(), db.unit_of_work() as session:
                done = retention.sweep(session, limit=5)
            if not done:
                break
            pieces.append(done)
            _append(app, 1, NOW)  # an append fits between two pieces
        assert pieces == [5, 5, 3]
    else:
        with app.app_context(), db.unit_of_work() as session:
            assert retention.sweep(session) == 13  # the partition, whole
    assert _old_rows(app) == 0
    with freeze_time(NOW):
        report = verify_bundle(_export(app, tmp_path), keys=gateway_keys(app), jobs=1)
    assert report.ok, report.render()


def test_the_next_run_finishes_an_interrupted_removal(app: Flask) -> None:
    _append(app, 12, OLD)
    _append(app, 1, NOW)
    _decide_purge(app)
    with freeze_time(NOW):
        result = app.test_cli_runner().invoke(main, ["retention", "purge", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["shards"] == [], "already decided, not purged twice"
    assert summary["rows_removed"] == 13
    assert _old_rows(app) == 0
    with app.app_context():
        assert db.session.get(Shard, "2026-01").status == "purged"  # type: ignore[union-attr]


def test_postgresql_removal_waits_for_a_long_reader_only_briefly(app: Flask) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("partition locks are PostgreSQL's")
    _append(app, 4, OLD)
    _append(app, 1, NOW)
    _decide_purge(app)
    with app.app_context():
        reader = db.engine.connect()
        reader.begin()
        reader.execute(text("SELECT count(*) FROM audit_entries"))  # an export in progress holds this lock
        try:
            with pytest.raises(OperationalError, match="lock timeout"), db.unit_of_work() as session:
                retention.sweep(session, lock_timeout="100ms")
        finally:
            reader.close()
        with db.unit_of_work() as session:
            assert retention.sweep(session, lock_timeout="100ms") == 5  # shard.opened and 4
        assert db.session.scalar(text("SELECT to_regclass('audit_entries_y2026m01')")) is None
