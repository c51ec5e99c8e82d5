"""Audit tables. ``audit_queue`` holds durable, not yet sequenced entries (see ``audit.log``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Same convention as the other packages' metadata (they cannot import each other).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back an aware UTC datetime (SQLite returns naive ones).

    The same type as ``consent.models.UTCDateTime``: the domains cannot import each other, and a test
    holds the two (and the naming conventions) equal.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("audit times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class QueuedEntry(Base):
    """An audit entry committed with the state change it records, waiting for the sequencer.

    Writers only INSERT here, inside their own transaction, so no request ever waits on the
    tree's lock; the sequencer later gives the entry its shard and gap-free index.
    """

    __tablename__ = "audit_queue"

    # SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    ts: Mapped[datetime] = mapped_column()
    # JCS bytes of the entry without its position (seq, shard), which the sequencer adds.
    body: Mapped[bytes] = mapped_column(LargeBinary)


class Entry(Base):
    """A sequenced entry: the exact JCS bytes that were hashed, plus columns to filter on.

    On PostgreSQL the table is partitioned by shard (one partition a month), so retention drops a
    partition instead of deleting millions of rows; the partitions are created by the sequencer.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_ts", "ts"),
        Index("ix_audit_entries_action_ts", "action", "ts"),
        Index("ix_audit_entries_subject_ts", "subject", "ts"),
        Index("ix_audit_entries_client_id_ts", "client_id", "ts"),
        {"postgresql_partition_by": "LIST (shard)"},
    )

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column()
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Node(Base):
    """An interior node of a shard's Merkle tree: the hash of the complete, aligned subtree of ``2**level``
    leaves that starts at leaf ``index << level``, written by the sequencer when the subtree is complete.

    With them an RFC 9162 proof reads O(log n) hashes instead of every leaf hash of its range. Only levels
    from ``audit.tree.STORED_FROM_LEVEL`` up are kept (an eighth as many rows as entries): a lower subtree
    is at most a few leaf hashes away. Derived data, checked by whoever verifies a proof against a signed
    root; removed with its shard's entries by retention.
    """

    __tablename__ = "audit_nodes"

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column("idx", BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Shard(Base):
    """One Merkle tree a calendar month; its frontier lets the sequencer extend it in O(log n)."""

    __tablename__ = "audit_shards"

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
    origin: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed | purged
    opened_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpoint_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Checkpoint(Base):
    """Signed notes, kept forever (also after their shard's entries are purged)."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("shard", "size", name="uq_audit_checkpoints_shard_size"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    shard: Mapped[str] = mapped_column(String(7), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    kid: Mapped[str] = mapped_column(String(64))
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()


class WitnessCosignature(Base):
    """A witness's cosignature line on one of the log's checkpoints (c2sp.org/tlog-cosignature).

    ``witness`` is the witness key's name and ID (``name+hexid``). Served appended to the checkpoint's note
    and put into export bundles; the latest size a witness cosigned for a shard is where the next
    consistency proof sent to it starts.
    """

    __tablename__ = "audit_cosignatures"

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(300), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    cosigned_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class Purge(Base):
    """Why a shard's entries are gone: retention policy, with the final checkpoint that covered them."""

    __tablename__ = "audit_purges"

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
    purged_at: Mapped[datetime] = mapped_column()
    entry_count: Mapped[int] = mapped_column(BigInteger)
    final_checkpoint: Mapped[str] = mapped_column(Text)
    retention_days: Mapped[int] = mapped_column(Integer)


class PurgePermit(Base):
    """Present only inside a retention purge transaction: the SQLite trigger lets DELETE through then."""

    __tablename__ = "audit_purge_permits"

    shard: Mapped[str] = mapped_column(String(7), primary_key=True)
