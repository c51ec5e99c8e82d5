"""Someone with full control of the database rewrites history; the next export fails verification.

The append-only triggers are bypassed the way a database superuser would (PostgreSQL:
``session_replication_role = replica`` turns triggers off for the session; SQLite: drop the triggers,
rewrite, put them back), then stored entries are changed, deleted or swapped. The bundle-level
tampering cases (edited bundles, re-signed logs, replaced shards) are in ``tests/audit/test_verify.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Connection, text

from audit import queries
from audit.rfc9162 import MerkleFrontier
from audit.verify import Report, verify_bundle
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.gateway.auditing.anchors import gateway_keys

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
SHARD = "2026-11"


def _append(app: Flask, n: int) -> None:
    # One entry per transaction, as requests write them; each commit is sequenced right after it.
    for i in range(n):
        with app.app_context(), db.unit_of_work() as session:
            AuditJournal(session, NOW).record("test.event", SYSTEM, subject=f"sub_{i % 4}", detail={"i": i})


@contextmanager
def _as_superuser(app: Flask) -> Iterator[Connection]:
    """A connection on which the append-only triggers do not fire, committed at the end."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        triggers = conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit%'")).all()
        for name, _sql in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _name, sql in triggers:
            conn.execute(text(sql))


def _body(conn: Connection, seq: int) -> bytes:
    return bytes(conn.execute(text("SELECT body FROM audit_entries WHERE shard = :s AND seq = :q"),
                              {"s": SHARD, "q": seq}).scalar_one())


def _set_body(conn: Connection, seq: int, body: bytes) -> None:
    conn.execute(text("UPDATE audit_entries SET body = :b WHERE shard = :s AND seq = :q"),
                 {"b": body, "s": SHARD, "q": seq})


def flip_one_byte(conn: Connection) -> None:
    body = _body(conn, 13)
    at = body.index(b"test.event") + len(b"test.even")
    _set_body(conn, 13, body[:at] + b"T" + body[at + 1 :])


def flip_one_byte_and_its_leaf_hash(conn: Connection) -> None:
    # A careful forger recomputes the stored leaf hash as well; only the signed roots catch it now.
    body = _body(conn, 13).replace(b'"i":12', b'"i":99')
    _set_body(conn, 13, body)
    conn.execute(text("UPDATE audit_entries SET leaf_hash = :h WHERE shard = :s AND seq = 13"),
                 {"h": hashlib.sha256(b"\x00" + body).digest(), "s": SHARD})


def delete_one(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_entries WHERE shard = :s AND seq = 13"), {"s": SHARD})


def swap_two(conn: Connection) -> None:
    a, b = _body(conn, 13), _body(conn, 17)
    _set_body(conn, 13, b)
    _set_body(conn, 17, a)


def swap_two_positions(conn: Connection) -> None:
    # Reorder by renumbering the rows instead of moving their bodies.
    for old, new in ((13, -1), (17, 13), (-1, 17)):
        conn.execute(text("UPDATE audit_entries SET seq = :n WHERE shard = :s AND seq = :o"),
                     {"n": new, "s": SHARD, "o": old})


def delete_the_tail(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_entries WHERE shard = :s AND seq >= 25"), {"s": SHARD})


def truncate_cleanly(conn: Connection) -> None:
    """Drop the newest entries, every checkpoint and stored tree node that covered them, and rewind the
    shard's frontier so the gateway carries on from there: the log is consistent in itself afterwards."""
    conn.execute(text("DELETE FROM audit_entries WHERE shard = :s AND seq >= 25"), {"s": SHARD})
    conn.execute(text("DELETE FROM audit_checkpoints WHERE shard = :s AND size > 20"), {"s": SHARD})
    # A node at level l with index i covers leaves [i << l, (i + 1) << l).
    for level in range(4, 8):
        conn.execute(text("DELETE FROM audit_nodes WHERE shard = :s AND level = :l AND (idx + 1) * :w > 25"),
                     {"s": SHARD, "l": level, "w": 1 << level})
    leaves = [bytes(h) for h in conn.execute(text(
        "SELECT leaf_hash FROM audit_entries WHERE shard = :s ORDER BY seq"), {"s": SHARD}).scalars()]
    conn.execute(text("UPDATE audit_shards SET size = 25, checkpoint_size = 20, frontier = :f WHERE shard = :s"),
                 {"f": MerkleFrontier.of_leaves(0, leaves).to_bytes(), "s": SHARD})


def _export_and_verify(app: Flask, tmp_path: Path, trusted: tuple[str, ...] = ()) -> Report:
    bundle = tmp_path / "bundle.zip"
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", "2026-11-01T00:00:00Z",
                                                 "--until", "2026-11-04T00:00:00Z", "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    return verify_bundle(bundle, keys=gateway_keys(app), jobs=1, trusted_checkpoints=trusted)


def _latest_note(app: Flask) -> str:
    with app.app_context():
        checkpoint = queries.latest_checkpoint(db.session, SHARD)
        assert checkpoint is not None
        return checkpoint.note


@pytest.mark.parametrize(("tamper", "expected"), [
    # The exported leaf hashes are the ones stored at sequencing time, so the altered entry is named.
    (flip_one_byte, {("entry_altered", 13)}),
    # With the stored hash rewritten too, the signed roots still catch it, between two checkpoints.
    (flip_one_byte_and_its_leaf_hash, {("root_mismatch", 10)}),
    (delete_one, {("entry_misplaced", 13), ("root_mismatch", 10)}),
    (swap_two, {("entry_misplaced", 13), ("entry_misplaced", 17), ("entry_altered", 13),
                ("entry_altered", 17)}),
    (swap_two_positions, {("entry_misplaced", 13), ("entry_misplaced", 17)}),
    # Entries 25..29 are gone: what the signed checkpoint of size 30 covers cannot be checked.
    (delete_the_tail, {("unsigned_entries", 20), ("unlinked_checkpoint", 30)}),
])
def test_tampering_in_the_database_is_caught_and_located(
    app: Flask, tmp_path: Path, tamper: Callable[[Connection], None], expected: set[tuple[str, int]]
) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 40)
    assert _export_and_verify(app, tmp_path).ok
    with _as_superuser(app) as conn:
        tamper(conn)
    report = _export_and_verify(app, tmp_path)
    assert not report.ok
    found = {(p.code, p.index) for p in report.problems if p.shard == SHARD}
    assert expected <= found, report.render()


# Frozen within the entries' month: the log keeps growing in the shard the auditor's checkpoint is of (on a
# later real date the month is closed and new entries open the next shard, which this test is not about).
@freeze_time(NOW)
def test_truncation_is_caught_by_a_checkpoint_the_auditor_holds(app: Flask, tmp_path: Path) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 40)
    held = _latest_note(app)  # e.g. fetched from GET /v1/audit/checkpoints/latest last week
    assert "\n40\n" in held
    with _as_superuser(app) as conn:
        truncate_cleanly(conn)
    assert _export_and_verify(app, tmp_path).ok, "without outside knowledge a clean truncation is invisible"
    report = _export_and_verify(app, tmp_path, trusted=(held,))
    assert ("unlinked_checkpoint", 40) in {(p.code, p.index) for p in report.problems}, report.render()
    # Once the log grows past the held size again, the two trees signed at size 40 contradict each other.
    _append(app, 20)
    report = _export_and_verify(app, tmp_path, trusted=(held,))
    codes = {p.code for p in report.problems if p.shard == SHARD}
    assert codes & {"root_mismatch", "conflicting_checkpoints"}, report.render()
