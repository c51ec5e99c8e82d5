"""Proofs read O(log n) hashes: the sequencer stores the tree's interior nodes as it completes them.

Counted on a 100,000-entry shard (written through the fast path of ``synthetic_shard``) and a 1,000-entry
one: a proof takes the same three statements whatever the size, and its rows grow with log2 of it. The
proofs themselves are checked against the shard's root and against proofs built from every leaf hash.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from audit import proofs, rfc9162, tree
from audit.errors import ProofUnavailable
from audit.models import Entry, Node
from audit.rfc9162 import MerkleFrontier
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.core import migrate
from gateway.core.db import db
from tests.gateway.auditing.synthetic_shard import body, counting_reads, write_shard

BIG, SMALL = "2026-05", "2026-06"


def _append(app: Flask, n: int, now: datetime) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, detail={"i": i})


def _leaves(app: Flask, shard: str) -> list[bytes]:
    with app.app_context():
        return [bytes(h) for h in db.session.scalars(select(Entry.leaf_hash).where(Entry.shard == shard)
                                                      .order_by(Entry.seq))]


def _stored_nodes(app: Flask, shard: str) -> dict[tuple[int, int], bytes]:
    with app.app_context():
        rows = db.session.execute(select(Node.level, Node.index, Node.hash).where(Node.shard == shard))
        return {(level, index): bytes(digest) for level, index, digest in rows}


def _expected_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    nodes = {}
    for level in range(tree.STORED_FROM_LEVEL, len(leaves).bit_length()):
        width = 1 << level
        for index in range(len(leaves) // width):
            nodes[(level, index)] = rfc9162.root(leaves[index * width : (index + 1) * width])
    return nodes


def test_the_sequencer_stores_every_complete_subtree_from_level_four(app: Flask) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 7
    now = datetime(2026, 11, 3, tzinfo=UTC)
    for batch in (1, 30, 2, 45, 17, 40):  # batches that end inside and across subtrees
        _append(app, batch, now)
    leaves = _leaves(app, "2026-11")
    assert len(leaves) == 136
    assert _stored_nodes(app, "2026-11") == _expected_nodes(leaves)

    def from_leaves(start: int, end: int) -> bytes:
        return rfc9162.root(leaves[start:end])

    with app.app_context():
        session = db.session
        for size in range(1, len(leaves) + 1):
            assert tree.frontier_at(session, "2026-11", size).root() == rfc9162.root(leaves[:size])
            for index in {0, size // 3, size - 1}:
                assert proofs.inclusion(session, "2026-11", index, size) == rfc9162.inclusion_proof(
                    index, size, from_leaves)
            for old in {1, size // 2 or 1, size}:
                assert proofs.consistency(session, "2026-11", old, size) == rfc9162.consistency_proof(
                    old, size, from_leaves)
        with pytest.raises(ProofUnavailable):
            proofs.inclusion(session, "2026-11", 3, len(leaves) + 1)
        with pytest.raises(ProofUnavailable):
            proofs.consistency(session, "2020-01", 1, 2)


def _read_counts(app: Flask, shard: str, size: int, frontier: MerkleFrontier) -> list[tuple[int, int]]:
    """(statements, rows) of inclusion and consistency proofs at spread-out positions, each checked."""
    counts = []
    rng = random.Random(size)
    root = frontier.root()
    for _ in range(6):
        index, old = rng.randrange(size), rng.randrange(1, size)
        with app.app_context():
            session = db.read_session()
            with counting_reads(session) as reads:
                path = proofs.inclusion(session, shard, index, size)
            session.close()
        rfc9162.verify_inclusion(index, size, rfc9162.leaf_hash(body(shard, index)), path, root)
        counts.append((reads.statements, reads.rows))
        with app.app_context():
            session = db.read_session()
            old_root = tree.frontier_at(session, shard, old).root()
            with counting_reads(session) as reads:
                path = proofs.consistency(session, shard, old, size)
            session.close()
        rfc9162.verify_consistency(old, size, path, old_root, root)
        counts.append((reads.statements, reads.rows))
    return counts


def test_a_proof_reads_log_n_hashes_on_a_100k_shard(app: Flask) -> None:
    sizes = {BIG: 100_000, SMALL: 1_000}
    frontiers = {}
    with app.app_context(), db.unit_of_work() as session:
        for shard, size in sizes.items():
            frontiers[shard] = write_shard(session, shard, size)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Node).where(Node.shard == BIG)) < 100_000 // 8
    for shard, size in sizes.items():
        depth = math.ceil(math.log2(size))
        for statements, rows in _read_counts(app, shard, size, frontiers[shard]):
            # The shard's row, then one SELECT of leaf hashes and one of nodes.
            assert statements == 3, (shard, statements)
            # At most one stored node per level from 4 up, and below that at most 1 + 2 + 4 + 8 leaves, for
            # each side of a proof; reading every leaf hash would be `size` rows.
            assert rows <= 1 + 2 * (depth + 15), (shard, rows)
    big = [rows for _, rows in _read_counts(app, BIG, sizes[BIG], frontiers[BIG])]
    small = [rows for _, rows in _read_counts(app, SMALL, sizes[SMALL], frontiers[SMALL])]
    # A hundred times the entries, not a hundred times the reads: log2(10^5) / log2(10^3) is 1.7.
    assert max(big) <= 2 * max(small)


def test_missing_nodes_are_rebuilt_from_the_leaves(app: Flask) -> None:
    """A shard sequenced before the nodes were stored (and not backfilled) still gets correct proofs."""
    with app.app_context(), db.unit_of_work() as session:
        frontier = write_shard(session, SMALL, 300)
        session.execute(Node.__table__.delete().where(Node.shard == SMALL, Node.level >= 6))
    with app.app_context():
        path = proofs.inclusion(db.session, SMALL, 200, 300)
    rfc9162.verify_inclusion(200, 300, rfc9162.leaf_hash(body(SMALL, 200)), path, frontier.root())


def test_the_migration_backfills_the_nodes_of_existing_shards(app: Flask, database_url: str) -> None:
    _append(app, 40, datetime(2026, 10, 20, tzinfo=UTC))
    _append(app, 70, datetime(2026, 11, 3, tzinfo=UTC))
    stored = {shard: _stored_nodes(app, shard) for shard in ("2026-10", "2026-11")}
    assert all(stored.values())
    with app.app_context():
        db.engine.dispose()
    migrate.downgrade(database_url, "0008_audit_nodes-1")  # the revision before the nodes
    migrate.upgrade(database_url)
    assert {shard: _stored_nodes(app, shard) for shard in stored} == stored
