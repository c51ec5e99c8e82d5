"""Building an export bundle from the database, streaming: constant memory whatever the range."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit import bundle
from audit.log import rfc3339
from audit.models import Checkpoint, Entry, Purge, Shard
from audit.proofs import frontier_at


@dataclass(frozen=True)
class ExportSummary:
    shards: list[dict[str, Any]]
    purged: list[str]


def _months(since: datetime, until: datetime) -> tuple[str, str]:
    return since.astimezone(UTC).strftime("%Y-%m"), until.astimezone(UTC).strftime("%Y-%m")


def _range(session: Session, shard: Shard, since: datetime, until: datetime) -> tuple[int, int] | None:
    """Leaf indices [first, end) of ``shard`` to export, ending on a signed checkpoint.

    Entries are exported as a contiguous run so roots can be recomputed; the run is extended to the
    next checkpoint at or after the range's last entry, because entries no signature covers yet cannot
    be verified by an auditor.
    """
    first = session.scalar(select(func.min(Entry.seq)).where(Entry.shard == shard.shard, Entry.ts >= since))
    last = session.scalar(select(func.max(Entry.seq)).where(Entry.shard == shard.shard, Entry.ts < until))
    if first is None or last is None or last < first:
        return None
    end = session.scalar(select(func.min(Checkpoint.size)).where(Checkpoint.shard == shard.shard,
                                                                 Checkpoint.size >= last + 1))
    if end is None:
        return None
    return first, end


def _entries(session: Session, shard: str, first: int, end: int) -> tuple[Iterator[bytes], Iterator[bytes]]:
    """The stored entry bytes and, in step, the leaf hashes the sequencer stored for them.

    Exporting the stored hashes (not ones recomputed from the bytes) lets the verifier name the exact
    entry when a row was altered in the database after it was sequenced. The writer consumes both
    iterators in lockstep, so ``tee`` buffers at most one row.
    """
    bodies, hashes = itertools.tee(_rows(session, shard, first, end))
    return (bytes(row[0]) for row in bodies), (bytes(row[1]) for row in hashes)


def _rows(session: Session, shard: str, first: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    # A generator, so the query runs only when the writer reaches this shard (one cursor at a time).
    rows = session.execute(
        select(Entry.body, Entry.leaf_hash).where(Entry.shard == shard, Entry.seq >= first, Entry.seq < end)
        .order_by(Entry.seq),
        execution_options={"yield_per": 2000},
    )
    for row in rows:
        yield row[0], row[1]


def _checkpoints(session: Session, shard: str, first: int, end: int) -> list[str]:
    return list(session.scalars(
        select(Checkpoint.note).where(Checkpoint.shard == shard, Checkpoint.size > first, Checkpoint.size <= end)
        .order_by(Checkpoint.size)
    ))


def write(
    session: Session,
    out: IO[bytes],
    *,
    issuer: str,
    since: datetime,
    until: datetime,
    now: datetime,
    vkeys: Sequence[str],
    jwks: dict[str, Any],
) -> ExportSummary:
    """Stream the bundle for [since, until) into ``out`` (a binary file object)."""
    low, high = _months(since, until)
    shards = list(session.scalars(
        select(Shard).where(Shard.shard >= low, Shard.shard <= high, Shard.status != "purged").order_by(Shard.shard)
    ))
    purges = list(session.scalars(select(Purge).where(Purge.shard >= low, Purge.shard <= high).order_by(Purge.shard)))
    exports: list[bundle.ShardExport] = []
    summary: list[dict[str, Any]] = []
    for shard in shards:
        span = _range(session, shard, since, until)
        if span is None:
            continue
        first, end = span
        entries, leaf_hashes = _entries(session, shard.shard, first, end)
        exports.append(bundle.ShardExport(
            shard=shard.shard,
            origin=shard.origin,
            first_index=first,
            entries=entries,
            leaf_hashes=leaf_hashes,
            checkpoints=_checkpoints(session, shard.shard, first, end),
            frontier=frontier_at(session, shard.shard, first).hashes(),
        ))
        summary.append({"shard": shard.shard, "first_index": first, "end": end})
    bundle.write_bundle(
        out,
        issuer=issuer,
        since=since,
        until=until,
        generated_at=now,
        shards=exports,
        vkeys=vkeys,
        jwks=jwks,
        purges=[bundle.PurgeRecord(shard=p.shard, purged_at=rfc3339(_aware(p.purged_at)),
                                   checkpoint=p.final_checkpoint) for p in purges],
    )
    return ExportSummary(shards=summary, purged=[p.shard for p in purges])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
