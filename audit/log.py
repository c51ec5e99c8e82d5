"""Appending to the audit log.

``append`` runs inside the caller's transaction: the entry becomes durable exactly when the state
change it records commits, and is thrown away with it on rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from audit import canonical
from audit.models import QueuedEntry

# Members the sequencer owns; a caller cannot forge a position in the tree.
_RESERVED = frozenset({"seq", "shard", "ts"})


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def append(session: Session, entry: Mapping[str, Any], now: datetime) -> QueuedEntry:
    """Queue ``entry`` (action, actor, subject, …) for the log, in the caller's transaction."""
    row = QueuedEntry(ts=now, body=queued_body(entry, now))
    session.add(row)
    return row


def queued_body(entry: Mapping[str, Any], now: datetime) -> bytes:
    """The queue row's body for ``entry`` at ``now``, as :func:`append` stores it (for a caller that
    inserts the row itself, with a prebuilt statement)."""
    if "action" not in entry or "actor" not in entry:
        raise ValueError("an audit entry needs an action and an actor")
    clash = _RESERVED.intersection(entry)
    if clash:
        raise ValueError(f"audit entry sets reserved members {sorted(clash)}")
    body = {k: v for k, v in entry.items() if v is not None}
    body["ts"] = rfc3339(now)
    return canonical.dumps(body)
