"""A full disk loses no committed entry and leaves the log verifiable (SQLite, where the test can fill it).

SQLite's ``max_page_count`` caps the database file at its current size on every new connection, so
any write that needs a new page fails with SQLITE_FULL, as on a full disk; lifting the cap is freeing
space. (On PostgreSQL a full disk fails the same transactions the same way; it cannot be staged here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from audit import log as audit_log
from audit.models import Entry, QueuedEntry
from audit.verify import verify_bundle
from gateway.auditing import runner as audit_runner
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.gateway.auditing.anchors import gateway_keys

NOW = datetime(2026, 11, 3, tzinfo=UTC)
BIG = "x" * 100_000  # needs new pages wherever it goes


def _cap(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA max_page_count = 1")  # clamped up to the current size


@contextmanager
def _disk_full(app: Flask) -> Iterator[None]:
    with app.app_context():
        engine = db.engine
    engine.dispose()
    event.listen(engine, "connect", _cap)
    try:
        yield
    finally:
        event.remove(engine, "connect", _cap)
        engine.dispose()


def _counts(app: Flask) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(QueuedEntry)) or 0,
                db.session.scalar(select(func.count()).select_from(Entry)) or 0)


@pytest.fixture(autouse=True)
def _sqlite_only(app: Flask) -> None:
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the disk is filled with SQLite's max_page_count")


def test_a_request_on_a_full_disk_commits_nothing(app: Flask) -> None:
    with app.app_context(), db.unit_of_work() as session:
        AuditJournal(session, NOW).record("test.event", SYSTEM)
    before = _counts(app)
    with _disk_full(app), app.app_context(), pytest.raises(OperationalError, match="full"), \
            db.unit_of_work() as session:
        AuditJournal(session, NOW).record("test.event", SYSTEM, detail={"blob": BIG})
    assert _counts(app) == before


def test_sequencing_on_a_full_disk_waits_and_loses_nothing(app: Flask, tmp_path: Path) -> None:
    with app.app_context(), db.unit_of_work() as session:
        AuditJournal(session, NOW).record("test.event", SYSTEM)
    with app.app_context():
        engine = db.engine
    # Committed requests whose sequencing has not run yet (outside an app context nothing sequences).
    with Session(engine) as session:
        for i in range(3):
            audit_log.append(session, {"action": "test.event", "actor": {"type": "system", "id": "t"},
                                       "detail": {"i": i, "blob": BIG}}, NOW)
        session.commit()
    assert _counts(app) == (3, 2)
    with _disk_full(app), app.app_context(), pytest.raises(OperationalError, match="full"):
        audit_runner.drain(app, NOW)
    assert _counts(app) == (3, 2), "the failed batch left nothing half-written"
    with app.app_context():
        assert audit_runner.drain(app, NOW) == 3
    assert _counts(app) == (0, 5)
    out = tmp_path / "bundle.zip"
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", "2026-11-01T00:00:00Z",
                                                 "--until", "2026-12-01T00:00:00Z", "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = verify_bundle(out, keys=gateway_keys(app), jobs=1)
    assert report.ok, report.render()
