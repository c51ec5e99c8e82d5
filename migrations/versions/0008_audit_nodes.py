"""audit: interior nodes of the monthly Merkle trees (proofs read O(log n) hashes); witness cosignatures

Revision ID: 0008_audit_nodes
Revises: 0007_client_metadata
Create Date: 2026-12-01 09:00:00

The sequencer stores every complete subtree of 16 leaves or more as it completes it (audit.tree). Shards
sequenced before this revision are backfilled here from their stored leaf hashes, one shard and 50,000
leaves at a time, with code of its own (a migration must not change when the application code does).
Purged shards have no leaves left and get no nodes.

audit_cosignatures keeps what witnesses (c2sp.org/tlog-witness) answered for the log's checkpoints.
"""
import hashlib
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_audit_nodes"
down_revision: str | Sequence[str] | None = "0007_client_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STORED_FROM_LEVEL = 4
_CHUNK = 50_000


def upgrade() -> None:
    op.create_table(
        "audit_cosignatures",
        sa.Column("shard", sa.String(length=7), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=300), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shard", "size", "witness", name=op.f("pk_audit_cosignatures")),
    )
    nodes = op.create_table(
        "audit_nodes",
        sa.Column("shard", sa.String(length=7), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("shard", "level", "idx", name=op.f("pk_audit_nodes")),
    )
    _backfill(op.get_bind(), nodes)


def downgrade() -> None:
    op.drop_table("audit_nodes")
    op.drop_table("audit_cosignatures")


def _backfill(bind: sa.Connection, nodes: sa.Table) -> None:
    shards = bind.execute(sa.text(
        "SELECT shard, size FROM audit_shards WHERE status <> 'purged' ORDER BY shard")).all()
    for shard, size in shards:
        rows = [{"shard": shard, "level": level, "idx": index, "hash": digest}
                for level, index, digest in _completed(_leaf_hashes(bind, shard, size))]
        for start in range(0, len(rows), 5000):
            bind.execute(nodes.insert(), rows[start : start + 5000])


def _leaf_hashes(bind: sa.Connection, shard: str, size: int) -> Iterator[bytes]:
    for start in range(0, size, _CHUNK):
        chunk = bind.execute(sa.text(
            "SELECT leaf_hash FROM audit_entries WHERE shard = :shard AND seq >= :lo AND seq < :hi ORDER BY seq"),
            {"shard": shard, "lo": start, "hi": start + _CHUNK}).scalars().all()
        yield from (bytes(leaf) for leaf in chunk)
        if len(chunk) != min(_CHUNK, size - start):
            return  # leaves are missing: nodes above the gap would be wrong; proofs rebuild what is absent


def _completed(leaves: Iterator[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """(level, index, hash) of every complete subtree of STORED_FROM_LEVEL or more (RFC 9162 node hashes)."""
    stack: list[tuple[int, bytes]] = []
    for size, leaf in enumerate(leaves, 1):
        level, digest = 0, leaf
        while stack and stack[-1][0] == level:
            digest = hashlib.sha256(b"\x01" + stack.pop()[1] + digest).digest()
            level += 1
            if level >= STORED_FROM_LEVEL:
                yield level, (size >> level) - 1, digest
        stack.append((level, digest))
