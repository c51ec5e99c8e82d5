"""The sequencer turns committed entries into gap-free, signed monthly Merkle shards."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from audit import rfc9162, signed_note
from audit.models import Checkpoint, Entry, QueuedEntry, Shard
from gateway.auditing import runner as audit_runner
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.core.db import db
from gateway.keys.keyring import key_store


def _append(app: Flask, n: int, now: datetime, action: str = "test.event") -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record(action, SYSTEM, detail={"i": i})


def _vkey(app: Flask) -> signed_note.Verifier:
    with app.app_context():
        signer = key_store().signer(db.session, app.config["ISSUER"])
        return signed_note.parse_vkey(signed_note.vkey_for("gateway.test/audit", signer.public_key_bytes))


def test_commit_integrates_entries_with_gap_free_indices_and_a_checkpoint(app: Flask) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 5
    now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    _append(app, 12, now)
    verifier = _vkey(app)
    with app.app_context():
        assert db.session.scalar(select(QueuedEntry.id).limit(1)) is None
        entries = list(db.session.scalars(select(Entry).order_by(Entry.seq)))
        assert [e.seq for e in entries] == list(range(13))  # shard.opened + 12
        assert entries[0].action == "shard.opened"
        assert all(e.shard == "2026-11" for e in entries)
        leaves = [e.leaf_hash for e in entries]
        assert all(rfc9162.leaf_hash(e.body) == e.leaf_hash for e in entries)
        checkpoints = list(db.session.scalars(select(Checkpoint).order_by(Checkpoint.size)))
        assert checkpoints, "a checkpoint every 5 entries"
        for cp in checkpoints:
            body, _signers = signed_note.open_note(cp.note, [verifier])
            parsed = signed_note.parse_checkpoint(body)
            assert parsed.origin == "gateway.test/audit/2026-11"
            assert parsed.root == rfc9162.root(leaves[: parsed.size])


def test_month_change_closes_shard_and_links_it(app: Flask) -> None:
    _append(app, 3, datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    _append(app, 2, datetime(2026, 11, 1, 0, 1, tzinfo=UTC))
    with app.app_context():
        shards = {s.shard: s for s in db.session.scalars(select(Shard))}
        assert shards["2026-10"].status == "closed"
        assert shards["2026-11"].status == "open"
        final = db.session.scalars(select(Checkpoint).where(Checkpoint.shard == "2026-10",
                                                            Checkpoint.size == 4)).one()
        first = db.session.scalars(select(Entry).where(Entry.shard == "2026-11", Entry.seq == 0)).one()
        opened = json.loads(first.body)
        assert opened["action"] == "shard.opened"
        assert opened["previous"]["note"] == final.note
        assert opened["previous"]["root"] == base64.b64encode(final.root).decode()


def test_tick_closes_an_idle_month(app: Flask) -> None:
    _append(app, 1, datetime(2026, 10, 15, tzinfo=UTC))
    with app.app_context():
        audit_runner.tick(app, datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC))
        statuses = {s.shard: s.status for s in db.session.scalars(select(Shard))}
    assert statuses == {"2026-10": "closed", "2026-11": "open"}


def test_time_based_checkpoint(app: Flask) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10_000
    start = datetime(2026, 11, 3, tzinfo=UTC)
    with freeze_time(start):
        _append(app, 3, start)
    with app.app_context():
        audit_runner.tick(app, start + timedelta(seconds=61))
        sizes = list(db.session.scalars(select(Checkpoint.size)))
    assert 4 in sizes


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET action = 'forged'",
    "DELETE FROM audit_entries",
    "UPDATE audit_checkpoints SET note = 'forged'",
    "DELETE FROM audit_checkpoints",
])
def test_database_refuses_to_rewrite_history(app: Flask, statement: str) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 1
    _append(app, 2, datetime(2026, 11, 3, tzinfo=UTC))
    with app.app_context(), pytest.raises(DBAPIError, match="append-only"), db.unit_of_work() as session:
        session.execute(text(statement))


def test_truncate_refused_on_postgresql(app: Flask) -> None:
    _append(app, 2, datetime(2026, 11, 3, tzinfo=UTC))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("TRUNCATE is PostgreSQL's")
        for table in ("audit_entries", "audit_entries_y2026m11", "audit_checkpoints"):
            with pytest.raises(DBAPIError, match="append-only"), db.unit_of_work() as session:
                session.execute(text(f"TRUNCATE {table}"))
