"""Retention: shards whose month ended more than the retention period ago lose their entries.

The shard's final signed checkpoint stays forever (``audit_checkpoints`` is never purged) and a purge
record names it, so an export later shows the month as "purged by policy", not "missing".

A purge is two steps. ``purge`` takes the decision: in one transaction with its audit entry it writes
the purge record and marks the shard purged, after which exports and proofs no longer offer its
entries. ``sweep`` then removes the rows, in short transactions the caller repeats until it returns 0:
on PostgreSQL it detaches and drops the month's partition (no row-by-row delete, no bloat), waiting at
most ``LOCK_TIMEOUT`` for the table lock that takes; on SQLite it deletes ``limit`` rows at a time under
a permit the append-only trigger recognises. Deleting a million rows in one SQLite transaction held the
database's only write lock for half a minute, beyond the writers' busy timeout; in pieces, appends go on
between them. A sweep cut short (a crash, a lock timeout) is finished by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.orm import Session

from audit.errors import AuditError
from audit.models import Checkpoint, Entry, Node, Purge, PurgePermit, Shard
from audit.sequencer import partition_name

MINIMUM_RETENTION_DAYS = 183  # six months: below this a purge is refused, whatever the config says
DEFAULT_RETENTION_DAYS = 3 * 365 + 1


class RetentionTooShort(AuditError):
    """The configured retention is below the legal floor."""


@dataclass(frozen=True)
class PurgePlan:
    shard: str
    entry_count: int
    final_checkpoint: str
    month_ended: datetime


def month_end(shard: str) -> datetime:
    year, month = (int(part) for part in shard.split("-"))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def plan(session: Session, now: datetime, retention_days: int) -> list[PurgePlan]:
    if retention_days < MINIMUM_RETENTION_DAYS:
        raise RetentionTooShort(
            f"retention of {retention_days} days is below the minimum of {MINIMUM_RETENTION_DAYS}")
    horizon = now - timedelta(days=retention_days)
    plans = []
    for shard in session.scalars(select(Shard).where(Shard.status == "closed").order_by(Shard.shard)):
        if month_end(shard.shard) > horizon:
            continue
        final = session.scalars(select(Checkpoint).where(Checkpoint.shard == shard.shard,
                                                         Checkpoint.size == shard.size)).first()
        if final is None:
            # Never purge what no signature covers: the evidence that the entries existed would go too.
            continue
        count = session.scalar(select(func.count()).select_from(Entry).where(Entry.shard == shard.shard)) or 0
        plans.append(PurgePlan(shard.shard, count, final.note, month_end(shard.shard)))
    return plans


def purge(session: Session, plans: list[PurgePlan], now: datetime, retention_days: int) -> None:
    """Record the purge of ``plans`` in the caller's transaction (the caller also writes the audit entry);
    the entries themselves go with ``sweep``."""
    for item in plans:
        session.add(Purge(shard=item.shard, purged_at=now, entry_count=item.entry_count,
                          final_checkpoint=item.final_checkpoint, retention_days=retention_days))
        shard = session.get(Shard, item.shard)
        if shard is not None:
            shard.status = "purged"


LOCK_TIMEOUT = "5s"


def sweep(session: Session, limit: int = 5000, lock_timeout: str = LOCK_TIMEOUT) -> int:
    """Remove one piece of a purged shard's entries; returns how many rows went (0: nothing is left).

    The caller commits after each call. On PostgreSQL a piece is a whole partition; if its lock cannot be
    had within ``lock_timeout`` (a long export is reading the log) the database raises and the caller
    retries later, rather than stalling the sequencer queued behind the waiting lock.
    """
    purged = select(Shard.shard).where(Shard.status == "purged").order_by(Shard.shard)
    if session.get_bind().dialect.name == "postgresql":
        for shard in session.scalars(purged):
            name = partition_name(shard)
            if session.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is None:
                continue
            record = session.get(Purge, shard)
            session.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": lock_timeout})
            session.execute(text(f"ALTER TABLE audit_entries DETACH PARTITION {name}"))
            session.execute(text(f"DROP TABLE {name}"))
            return max(record.entry_count if record is not None else 0, 1)
        return _sweep_nodes(session, purged, limit)
    leftover = session.scalar(select(Entry.shard).where(Entry.shard.in_(purged)).limit(1))
    if leftover is None:
        return _sweep_nodes(session, purged, limit)
    first = session.scalar(select(func.min(Entry.seq)).where(Entry.shard == leftover)) or 0
    session.add(PurgePermit(shard=leftover))
    session.flush()
    done = session.execute(delete(Entry).where(Entry.shard == leftover, Entry.seq < first + limit),
                           execution_options={"synchronize_session": False})
    session.execute(delete(PurgePermit).where(PurgePermit.shard == leftover))
    return int(getattr(done, "rowcount", 0) or 0)


def _sweep_nodes(session: Session, purged: Select[str], limit: int) -> int:
    """Remove up to ``limit`` interior nodes (``audit.tree``) of purged shards, once their entries are gone.

    A level's nodes are numbered from 0 without gaps, so the lowest ``limit`` indices of the lowest level
    left are one piece, deleted by a range on the primary key on both databases.
    """
    found = session.execute(
        select(Node.shard, Node.level, func.min(Node.index)).where(Node.shard.in_(purged))
        .group_by(Node.shard, Node.level).order_by(Node.shard, Node.level).limit(1)
    ).first()
    if found is None:
        return 0
    shard, level, lowest = found
    done = session.execute(delete(Node).where(Node.shard == shard, Node.level == level, Node.index < lowest + limit),
                           execution_options={"synchronize_session": False})
    return max(int(getattr(done, "rowcount", 0) or 0), 1)
