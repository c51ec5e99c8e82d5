"""Someone with full control of the database rewrites history; the next export fails verification.

The append-only triggers are bypassed the way a database superuser would (PostgreSQL:
``session_replication_role = replica`` turns triggers off for the session; SQLite: drop the triggers,
rewrite, put them back), then stored entries are changed, deleted or swapped. The bundle-level
tampering cases (edited bundles, re-signed logs, replaced shards) are in ``tests/audit/test_verify.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Connection, text

from audit.verify import Report, verify_bundle
from gateway.audit_trail import SYSTEM, record
from gateway.cli import main
from gateway.db import db

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
SHARD = "2026-11"


def _append(app: Flask, n: int) -> None:
    # One entry per transaction, as requests write them; each commit is sequenced right after it.
    for i in range(n):
        with app.app_context(), db.unit_of_work() as session:
            record(session, "test.event", SYSTEM, NOW, subject=f"sub_{i % 4}", detail={"i": i})


@contextmanager
def _as_superuser(app: Flask) -> Iterator[Connection]:
    """A connection on which the append-only triggers do not fire, committed at the end."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        triggers = conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_entries'")).all()
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
    import hashlib

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


def _export_and_verify(app: Flask, tmp_path: Path) -> Report:
    bundle = tmp_path / "bundle.zip"
    with app.test_request_context():
        pass
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", "2026-11-01T00:00:00Z",
                                                 "--until", "2026-11-04T00:00:00Z", "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    return verify_bundle(bundle, jobs=1)


@pytest.mark.parametrize(("tamper", "index"), [
    (flip_one_byte, 13),
    (flip_one_byte_and_its_leaf_hash, 13),
    (delete_one, 13),
    (swap_two, 13),
    (swap_two_positions, 13),
    (delete_the_tail, 25),
])
def test_tampering_in_the_database_is_caught_and_located(
    app: Flask, tmp_path: Path, tamper: Callable[[Connection], None], index: int
) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 40)
    assert _export_and_verify(app, tmp_path).ok
    with _as_superuser(app) as conn:
        tamper(conn)
    report = _export_and_verify(app, tmp_path)
    assert not report.ok
    print(report.render())
    first = report.problems[0]
    assert (first.shard, first.index) == (SHARD, index), report.render()
