"""Building an export bundle from the database, streaming: constant memory whatever the range."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit import bundle, proofs, witness
from audit.log import rfc3339
from audit.models import Checkpoint, Entry, Purge, Shard
from audit.proofs import frontier_at


@dataclass(frozen=True)
class ExportSummary:
    shards: list[dict[str, Any]]
    purged: list[str]


def _months(since: datetime, until: datetime) -> tuple[str, str]:
    """The first and last month the range [since, until) touches (``until`` is exclusive)."""
    last = until - timedelta(microseconds=1)
    return bundle.shard_of(since), bundle.shard_of(last)


def _range(session: Session, shard: Shard, since: datetime, until: datetime) -> tuple[int, int] | None:
    """Leaf indices [first, end) of ``shard`` to export, ending on a signed checkpoint.

    Entries are exported as a contiguous run so roots can be recomputed; the run is extended to the
    next checkpoint at or after the range's last entry, because entries no signature covers yet cannot
    be verified by an auditor. Entries sequenced after the export sealed the log (other requests go on
    meanwhile) may have no checkpoint yet: the run then ends at the latest one, as the log stood when
    the bundle was generated.
    """
    first: int | None = session.scalar(
        select(func.min(Entry.seq)).where(Entry.shard == shard.shard, Entry.ts >= since))
    last: int | None = session.scalar(
        select(func.max(Entry.seq)).where(Entry.shard == shard.shard, Entry.ts < until))
    if first is None or last is None or last < first:
        # No entry of this month lies in the range (a quiet stretch): the first entry after it, or else the
        # month's last, still shows the month's tree, so the month is accounted for rather than missing.
        if first is None:
            first = session.scalar(select(func.max(Entry.seq)).where(Entry.shard == shard.shard))
        if first is None:
            return None
        last = first
    end = session.scalar(select(func.min(Checkpoint.size)).where(Checkpoint.shard == shard.shard,
                                                                 Checkpoint.size >= last + 1))
    if end is None:
        end = session.scalar(select(func.max(Checkpoint.size)).where(Checkpoint.shard == shard.shard))
    if end is None or end <= first:
        return None
    return first, end


def _log_start(session: Session, high: str) -> tuple[Shard, int] | None:
    """The log's first shard and the size of its first checkpoint, when the whole range lies before it.

    Its entries up to that checkpoint show where the log began (entry 0 commits to no earlier shard), so
    that the verifier reports the range's months as before the log began rather than missing.
    """
    first = session.scalars(select(Shard).order_by(Shard.shard).limit(1)).first()
    if first is None or first.shard <= high or first.status == "purged":
        return None
    size = session.scalar(select(func.min(Checkpoint.size)).where(Checkpoint.shard == first.shard))
    return None if size is None else (first, size)


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


def _checkpoints(session: Session, shard: str, first: int,
                 end: int) -> tuple[list[str], list[bundle.ConsistencyProof]]:
    """The shard's checkpoints in (first, end], each with the witnesses' cosignatures appended, and the
    newest cosigned checkpoint beyond ``end`` with a consistency proof from ``end`` to it, so that entries
    after the last checkpoint a witness saw are still covered by one (witnesses cosign the newest only)."""
    rows: list[tuple[int, str]] = [(size, note) for size, note in session.execute(
        select(Checkpoint.size, Checkpoint.note).where(Checkpoint.shard == shard, Checkpoint.size > first,
                                                       Checkpoint.size <= end).order_by(Checkpoint.size))]
    sizes = [size for size, _ in rows]
    witnessed = witness.newest_cosigned(session, shard)
    links: list[bundle.ConsistencyProof] = []
    if witnessed is not None and witnessed > end:
        note = session.scalars(select(Checkpoint.note).where(Checkpoint.shard == shard,
                                                             Checkpoint.size == witnessed)).one()
        rows.append((witnessed, note))
        sizes.append(witnessed)
        links.append(bundle.ConsistencyProof(end, witnessed, tuple(proofs.consistency(session, shard, end,
                                                                                      witnessed))))
    lines = witness.cosignature_lines(session, shard, sizes)
    return [note + lines.get(size, "") for size, note in rows], links


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
    spans = [(shard, _range(session, shard, since, until)) for shard in shards]
    if not any(span for _, span in spans) and not purges:
        start = _log_start(session, high)
        spans = [(start[0], (0, start[1]))] if start is not None else []
    for shard, span in spans:
        if span is None:
            continue
        first, end = span
        entries, leaf_hashes = _entries(session, shard.shard, first, end)
        notes, links = _checkpoints(session, shard.shard, first, end)
        exports.append(bundle.ShardExport(
            shard=shard.shard,
            origin=shard.origin,
            first_index=first,
            entries=entries,
            leaf_hashes=leaf_hashes,
            checkpoints=notes,
            frontier=frontier_at(session, shard.shard, first).hashes(),
            consistency=links,
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
