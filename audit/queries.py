"""Reading the log for auditors: filtered, cursor-paged entries and checkpoints."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from audit import witness
from audit.errors import AuditError
from audit.models import Checkpoint, Entry


class BadCursor(AuditError):
    """The cursor was not one this service handed out."""

    code = "bad_cursor"


@dataclass(frozen=True)
class EntryFilter:
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    subject: str | None = None
    client_id: str | None = None
    consent_id: str | None = None


def encode_cursor(shard: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{shard}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        shard, seq = raw.split(":")
        if len(shard) != 7 or shard[4] != "-":
            raise ValueError(shard)
        return shard, int(seq)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadCursor("unknown cursor") from exc


def entries(session: Session, where: EntryFilter, limit: int, after: str | None) -> tuple[list[Entry], str | None]:
    """One page in log order (shard, index), and the cursor of the next page (None at the end)."""
    query = select(Entry).order_by(Entry.shard, Entry.seq).limit(limit + 1)
    if where.since is not None:
        query = query.where(Entry.ts >= where.since)
    if where.until is not None:
        query = query.where(Entry.ts < where.until)
    for column, value in ((Entry.action, where.action), (Entry.subject, where.subject),
                          (Entry.client_id, where.client_id), (Entry.consent_id, where.consent_id)):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(tuple_(Entry.shard, Entry.seq) > tuple_(*decode_cursor(after)))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].shard, rows[-1].seq) if more and rows else None)


def latest_checkpoint(session: Session, shard: str | None) -> Checkpoint | None:
    query = select(Checkpoint).order_by(Checkpoint.shard.desc(), Checkpoint.size.desc()).limit(1)
    if shard is not None:
        query = query.where(Checkpoint.shard == shard)
    return session.scalars(query).first()



def checkpoint_note(session: Session, checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with the witnesses' cosignature lines it has gathered appended."""
    return witness.with_cosignatures(session, checkpoint)
