"""The triggers refuse rewrites of the tables test_sequencer.py does not cover: purge records, the queue,
and (PostgreSQL) a month's partition addressed directly. The connection here is the test database's
owner, so only the triggers stand in the way (privileges are in test_pg_privileges.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit import log as audit_log
from audit.models import Purge
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.core.db import db

NOW = datetime(2026, 11, 3, tzinfo=UTC)


def _refused(app: Flask, statement: str, match: str) -> None:
    with app.app_context(), pytest.raises(DBAPIError, match=match), db.unit_of_work() as session:
        session.execute(text(statement))


def _purge_record(app: Flask) -> None:
    with app.app_context(), db.unit_of_work() as session:
        session.add(Purge(shard="2023-01", purged_at=NOW, entry_count=4, final_checkpoint="note",
                          retention_days=1096))


@pytest.mark.parametrize("statement", [
    "UPDATE audit_purges SET entry_count = 0",
    "DELETE FROM audit_purges",
])
def test_purge_records_are_append_only(app: Flask, statement: str) -> None:
    _purge_record(app)
    _refused(app, statement, "append-only")


def test_queued_entries_cannot_be_rewritten(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    # Queued outside an app context, so nothing sequences (and deletes) it before the UPDATE.
    with Session(engine) as session:
        audit_log.append(session, {"action": "test.event", "actor": {"type": "system", "id": "t"}}, NOW)
        session.commit()
    _refused(app, "UPDATE audit_queue SET ts = ts", "immutable|append-only")


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries_y2026m11 SET action = 'forged'",
    "DELETE FROM audit_entries_y2026m11",
    "TRUNCATE audit_entries_y2026m11",
    "TRUNCATE audit_purges",
])
def test_postgresql_guards_partitions_and_truncate(app: Flask, statement: str) -> None:
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("partitions and TRUNCATE are PostgreSQL's")
    _purge_record(app)
    with app.app_context(), db.unit_of_work() as session:
        AuditJournal(session, NOW).record("test.event", SYSTEM)
    _refused(app, statement, "append-only")


def test_no_setting_opens_the_trigger_on_postgresql(app: Flask) -> None:
    """Even a role holding DELETE cannot use a session setting to get a row past the trigger."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the setting was PostgreSQL's")
        with db.unit_of_work() as session:
            AuditJournal(session, datetime(2026, 11, 3, tzinfo=UTC)).record("test.event", SYSTEM)
        with db.unit_of_work() as session:
            session.execute(text("SET LOCAL consent_gateway.purge_shard = '2026-11'"))
            with pytest.raises(DBAPIError, match="append-only"):
                session.execute(text("DELETE FROM audit_entries WHERE shard = '2026-11'"))
            session.rollback()
