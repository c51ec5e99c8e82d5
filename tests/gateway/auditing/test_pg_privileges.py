"""The PostgreSQL role setup of docs/AUDIT.md, run as written: the app role cannot rewrite the log.

The SQL is read from the documentation itself, so the documented statements are the tested ones. The
roles get a random suffix (roles are cluster-wide) and are dropped at the end.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from audit.models import Entry, Node, QueuedEntry, Shard
from gateway import create_app
from gateway.auditing import runner as audit_runner
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core import migrate
from gateway.core.db import db
from tests.conftest import PG_URL, app_config, init_keys

pytestmark = pytest.mark.postgres

DOC = Path(__file__).resolve().parents[3] / "docs" / "AUDIT.md"
ROLES = ("consent_gateway_owner", "consent_gateway_app", "consent_gateway_retention")


def documented_sql(name: str) -> str:
    match = re.search(rf"<!-- sql:{name} -->\s*```sql\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/AUDIT.md has no sql:{name} block"
    return match.group(1)


@dataclass(frozen=True)
class Setup:
    database: str
    suffix: str

    def url(self, role: str) -> str:
        return make_url(PG_URL).set(username=f"{role}_{self.suffix}", password=None,
                                    database=self.database).render_as_string(hide_password=False)

    def sql(self, name: str) -> str:
        statement = documented_sql(name)
        for role in ROLES:
            statement = statement.replace(role, f"{role}_{self.suffix}")
        return statement.replace("DATABASE consent_gateway ", f"DATABASE {self.database} ")

    def app(self, role: str, tmp_path: Path) -> Flask:
        application = create_app(app_config(self.url(role), tmp_path / role))
        application.instance_path = str(tmp_path / role / "instance")
        return application


@pytest.fixture
def setup() -> Iterator[Setup]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    suffix = uuid.uuid4().hex[:8]
    found = Setup(database=f"cg_roles_{suffix}", suffix=suffix)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in found.sql("roles").split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        # The owner runs the migrations, so it owns every table, then hands out the documented grants.
        migrate.upgrade(found.url("consent_gateway_owner"))
        owner = create_engine(found.url("consent_gateway_owner"))
        with owner.begin() as conn:
            conn.exec_driver_sql(found.sql("grants"))
        owner.dispose()
        yield found
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{found.database}" WITH (FORCE)'))
            for role in reversed(ROLES):
                conn.execute(text(f"DROP ROLE IF EXISTS {role}_{suffix}"))
        admin.dispose()


NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _append(app: Flask, n: int, now: datetime) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, detail={"i": i})


def _refused(app: Flask, *statements: str) -> str:
    # All statements run in one transaction (a SET LOCAL must precede the statement it is meant to enable).
    with app.app_context(), pytest.raises(DBAPIError) as caught, db.unit_of_work() as session:
        session.execute(text(";".join(statements)))
    return str(caught.value.orig)


def _run(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_app_role_appends_and_reads_but_cannot_rewrite(setup: Setup, tmp_path: Path) -> None:
    owner = setup.app("consent_gateway_owner", tmp_path)
    app = setup.app("consent_gateway_app", tmp_path)
    with freeze_time(NOW):
        _run(owner, "audit", "partitions", "--months", "1")
    init_keys(app)
    app.config["AUDIT_CHECKPOINT_EVERY"] = 3
    _append(app, 7, NOW)
    with app.app_context():
        assert db.session.scalar(select(QueuedEntry.id).limit(1)) is None, "the app role sequences"
        assert len(list(db.session.scalars(select(Entry.seq)))) == 8
    for statement in (
        "UPDATE audit_entries SET action = 'forged'",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
        "UPDATE audit_entries_y2026m11 SET action = 'forged'",
        "DELETE FROM audit_entries_y2026m11",
        "UPDATE audit_checkpoints SET note = 'forged'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
        "DELETE FROM audit_purges",
        "INSERT INTO audit_purges VALUES ('2026-11', now(), 0, 'note', 1096)",
        "UPDATE audit_queue SET body = ''",
        "TRUNCATE audit_queue",
        "DELETE FROM audit_shards",
        "INSERT INTO audit_purge_permits VALUES ('2026-11')",
        "UPDATE audit_nodes SET hash = ''",
        "DELETE FROM audit_nodes",
    ):
        assert "permission denied" in _refused(app, statement), statement
    # What a superuser uses to get past the triggers is not the app role's to use.
    assert "permission denied" in _refused(app, "SET session_replication_role = replica")
    assert "must be owner" in _refused(app, "ALTER TABLE audit_entries DISABLE TRIGGER ALL")
    assert "must be owner" in _refused(app, "ALTER TABLE audit_entries DETACH PARTITION audit_entries_y2026m11")
    # No session setting opens the trigger any more (migration 0006), and DELETE is not granted either.
    assert "permission denied" in _refused(app, "SET LOCAL consent_gateway.purge_shard = '2026-11'",
                                           "DELETE FROM audit_entries WHERE shard = '2026-11'")
    # The sequencer, as the app role, stores the interior nodes of the tree it grows (audit.tree).
    _append(app, 20, NOW)
    with app.app_context():
        assert db.session.scalar(select(Node.hash).where(Node.shard == "2026-11", Node.level == 4)) is not None


def test_a_month_without_partition_waits_queued_until_the_owner_prepares_it(setup: Setup, tmp_path: Path) -> None:
    owner = setup.app("consent_gateway_owner", tmp_path)
    app = setup.app("consent_gateway_app", tmp_path)
    with freeze_time(NOW):
        _run(owner, "audit", "partitions", "--months", "0")
    init_keys(app)
    _append(app, 2, NOW)
    december = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    # The request's transaction commits; only the sequencing is deferred (it may not create a table).
    _append(app, 3, december)
    with app.app_context():
        assert len(list(db.session.scalars(select(QueuedEntry.id)))) == 3
    with freeze_time(december):
        assert "2026-12" in _run(owner, "audit", "partitions")
    with app.app_context():
        audit_runner.tick(app, december)
        assert db.session.scalar(select(QueuedEntry.id).limit(1)) is None
        statuses = {s.shard: s.status for s in db.session.scalars(select(Shard))}
    assert statuses == {"2026-11": "closed", "2026-12": "open"}


def test_retention_role_purges_a_partition(setup: Setup, tmp_path: Path) -> None:
    owner = setup.app("consent_gateway_owner", tmp_path)
    app = setup.app("consent_gateway_app", tmp_path)
    retention = setup.app("consent_gateway_retention", tmp_path)
    old = datetime(2023, 1, 10, tzinfo=UTC)
    with freeze_time(old):
        _run(owner, "audit", "partitions", "--months", "1")
    init_keys(app)
    _append(app, 4, old)
    now = datetime(2026, 11, 3, tzinfo=UTC)
    with freeze_time(now):
        _run(owner, "audit", "partitions", "--months", "0")
        with app.app_context():
            audit_runner.tick(app, now)
        assert "must be owner" in _refused(app, "DROP TABLE audit_entries_y2023m01")
        assert "purged 2023-01" in _run(retention, "retention", "purge")
    with app.app_context():
        assert db.session.scalar(text("SELECT to_regclass('audit_entries_y2023m01')")) is None
        assert db.session.get(Shard, "2023-01").status == "purged"  # type: ignore[union-attr]
