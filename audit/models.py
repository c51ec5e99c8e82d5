"""Audit tables. ``audit_queue`` holds durable, not yet sequenced entries (see ``audit.log``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Same convention as the other packages' metadata (they cannot import each other).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # JCS bytes of the entry without its position (seq, shard), which the sequencer adds.
    body: Mapped[bytes] = mapped_column(LargeBinary)
