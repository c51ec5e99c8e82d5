"""Retention: shards whose month ended more than the retention period ago lose their entries.

The shard's final signed checkpoint stays forever (``audit_checkpoints`` is never purged) and a purge
record names it, so an export later shows the month as "purged by policy", not "missing". On
PostgreSQL the month's partition is detached and dropped (no row-by-row delete, no bloat); on SQLite
the rows are deleted under a permit the append-only trigger recognises, inside the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from audit.errors import AuditError
from audit.models import Checkpoint, Entry, Purge, PurgePermit, Shard
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
    """Carry out ``plans`` in the caller's transaction (the caller also writes the audit entry)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for item in plans:
        session.add(Purge(shard=item.shard, purged_at=now, entry_count=item.entry_count,
                          final_checkpoint=item.final_checkpoint, retention_days=retention_days))
        if postgres:
            name = partition_name(item.shard)
            session.execute(text(f"ALTER TABLE audit_entries DETACH PARTITION {name}"))
            session.execute(text(f"DROP TABLE {name}"))
        else:
            session.add(PurgePermit(shard=item.shard))
            session.flush()
            session.execute(delete(Entry).where(Entry.shard == item.shard))
            session.execute(delete(PurgePermit).where(PurgePermit.shard == item.shard))
        shard = session.get(Shard, item.shard)
        if shard is not None:
            shard.status = "purged"
