"""The sequencer: gives queued entries their place in a monthly Merkle tree, in batches.

Requests only INSERT into ``audit_queue`` inside their own transaction. The sequencer, one at a time
across all processes (a PostgreSQL advisory lock; SQLite's write lock does the same), moves a batch
into ``audit_entries`` with gap-free indices, extends the shard's frontier, and signs a checkpoint
every N entries or T seconds and when a month closes. Queue rows are deleted in the same transaction
as their entries are written, so a kill -9 at any moment either leaves an entry queued (integrated by
the next run) or integrated, never both and never neither.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from audit import canonical, signed_note
from audit.bundle import shard_of, shard_origin
from audit.log import rfc3339
from audit.models import Checkpoint, Entry, Node, QueuedEntry, Shard
from audit.rfc9162 import MerkleFrontier, leaf_hash
from audit.tree import node_rows

# Any constant works; it only has to be the same in every gateway process.
ADVISORY_LOCK_KEY = 0x6175646974  # "audit"


class NoteSigner(Protocol):
    """What the sequencer needs to sign checkpoints: the key's name, id and raw public key, and sign().

    A protocol, so the caller may load the key only when a checkpoint is actually signed.
    """

    @property
    def name(self) -> str: ...

    @property
    def kid(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Policy:
    checkpoint_every: int = 1000
    checkpoint_seconds: int = 60
    batch: int = 500


def try_lead(session: Session) -> bool:
    """Become the sequencer for this transaction, or learn that another process is."""
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar())
    # SQLite: the transaction already holds the database's single write lock (BEGIN IMMEDIATE).
    return True


def integrate(session: Session, signer: NoteSigner, issuer: str, now: datetime, policy: Policy = Policy()) -> int:
    """Sequence up to one batch of queued entries; returns how many were integrated.

    The caller commits. Returns 0 without waiting when another process holds the lead.
    """
    if not try_lead(session):
        return 0
    queued = session.execute(
        select(QueuedEntry.id, QueuedEntry.ts, QueuedEntry.body).order_by(QueuedEntry.id).limit(policy.batch)
    ).all()
    if not queued:
        return 0
    shard = _open(session)
    tree = _Tree(session, shard) if shard is not None else None
    for _id, ts, body in queued:
        month = shard_of(_aware(ts))
        if tree is None or month > tree.shard.shard:
            tree = _open_shard(session, signer, issuer, month, now, previous=tree)
        # An entry from a month already closed (queued just before midnight, sequenced after) joins the
        # open shard: a closed tree never grows, and the entry's own ts still tells when it happened.
        tree.add(json.loads(body), body)
    assert tree is not None
    tree.flush()
    # By id, never by range: an id below the batch's highest may belong to a transaction that commits
    # only now, and it must stay queued for the next batch.
    session.execute(delete(QueuedEntry).where(QueuedEntry.id.in_([row[0] for row in queued])),
                    execution_options={"synchronize_session": False})
    _maybe_checkpoint(session, signer, tree.shard, now, policy)
    return len(queued)


class _Tree:
    """The open shard while a batch is integrated.

    The frontier stays decoded in memory for the whole batch (decoding and re-encoding it per entry cost
    more than hashing the entry), and the batch's entries are inserted with one multi-row statement, the
    interior nodes they complete (``audit.tree``) with another; ``flush`` writes all back before anything
    reads the shard row (a checkpoint, the month's close).
    """

    def __init__(self, session: Session, shard: Shard) -> None:
        self.session = session
        self.shard = shard
        self.frontier = MerkleFrontier.from_bytes(shard.frontier)
        self.rows: list[dict[str, Any]] = []
        self.completed: list[tuple[int, int, bytes]] = []

    def add(self, body: dict[str, Any], queued: bytes | None = None) -> None:
        """Append ``body``; ``queued`` is its JCS form as queued (without position), when there is one."""
        shard = self.shard
        data = positioned(body, shard.shard, shard.size, queued)
        digest = leaf_hash(data)
        self.frontier.append(digest, self.completed)
        self.rows.append({
            "shard": shard.shard,
            "seq": shard.size,
            "ts": datetime.fromisoformat(body["ts"].replace("Z", "+00:00")),
            "action": str(body.get("action", ""))[:64],
            "subject": body.get("subject"),
            "client_id": body.get("client_id"),
            "consent_id": body.get("consent_id"),
            "body": data,
            "leaf_hash": digest,
        })
        shard.size += 1

    def flush(self) -> None:
        if self.rows:
            # A Core insert of plain rows: the ORM's per-object bookkeeping would cost more than the hashing.
            self.session.connection().execute(_INSERT_ENTRY, self.rows)
            self.rows = []
        nodes = node_rows(self.shard.shard, self.completed)
        self.completed = []
        if nodes:
            self.session.connection().execute(_INSERT_NODE, nodes)
        self.shard.frontier = self.frontier.to_bytes()


def positioned(body: dict[str, Any], shard: str, seq: int, queued: bytes | None = None) -> bytes:
    """The JCS bytes of ``body`` with its position (``shard``, ``seq``) added; ``body`` gains both members.

    ``queued`` is the JCS form of ``body`` without them, as ``audit.log.append`` stored it. rfc8785 is pure
    Python: re-serialising an entry costs about twenty times more than splicing the two members into the
    queued bytes in front of the first member that sorts after them. The splice is only taken when it is
    certainly canonical: ASCII member names (their UTF-16 order is their byte order), none sorting between
    ``seq`` and ``shard``, and the spliced bytes parse back to exactly ``body``, which rules out a match
    inside a nested object. Anything else is serialised by rfc8785.
    """
    body["shard"] = shard
    body["seq"] = seq
    if queued is not None:
        names = sorted(name for name in body if name not in _POSITION)
        if all(name.isascii() and not "seq" <= name <= "shard" for name in names):
            position = b'"seq":%d,"shard":"%s"' % (seq, shard.encode())
            after = [name for name in names if name > "shard"]
            if not names:
                spliced = b"{" + position + b"}"
            elif not after:
                spliced = queued[:-1] + b"," + position + b"}"
            elif after[0] == names[0]:
                spliced = b"{" + position + b"," + queued[1:]
            else:
                at = queued.find(b',"%s":' % after[0].encode())
                spliced = queued[: at + 1] + position + b"," + queued[at + 1 :] if at > 0 else b""
            if spliced and json.loads(spliced) == body:
                return spliced
    return canonical.dumps(body)


_POSITION = frozenset({"seq", "shard"})
_INSERT_ENTRY = insert(Entry.metadata.tables[Entry.__tablename__])
_INSERT_NODE = insert(Node.metadata.tables[Node.__tablename__])


def close_months(session: Session, signer: NoteSigner, issuer: str, now: datetime) -> str | None:
    """Close the open shard when its month has ended, even if nothing new arrives; returns it."""
    if not try_lead(session):
        return None
    shard = _open(session)
    if shard is None or shard.shard >= shard_of(now):
        return None
    # Anything still queued from the old month must land in it before it closes.
    if session.scalar(select(QueuedEntry.id).limit(1)) is not None:
        return None
    _open_shard(session, signer, issuer, shard_of(now), now, previous=_Tree(session, shard)).flush()
    return shard.shard


def open_shard(session: Session) -> Shard | None:
    return _open(session)


def _open(session: Session) -> Shard | None:
    return session.scalars(select(Shard).where(Shard.status == "open").order_by(Shard.shard.desc()).limit(1)).first()


def _open_shard(
    session: Session, signer: NoteSigner, issuer: str, month: str, now: datetime, *, previous: _Tree | None
) -> _Tree:
    previous_note: dict[str, Any] | None = None
    if previous is not None:
        previous.flush()
        closing = previous.shard
        final = _checkpoint(session, signer, closing, now, final=True)
        closing.status = "closed"
        closing.closed_at = now
        previous_note = {
            "origin": closing.origin,
            "size": final.size,
            "root": _b64(final.root),
            "note": final.note,
        }
    _ensure_partition(session, month)
    shard = Shard(shard=month, origin=shard_origin(issuer, month), size=0, frontier=b"", status="open",
                  opened_at=now, checkpoint_size=0, checkpoint_at=now)
    session.add(shard)
    session.flush()
    tree = _Tree(session, shard)
    # The first leaf of every month commits to the previous month's final checkpoint, chaining months.
    tree.add({"action": "shard.opened", "actor": {"type": "system", "id": "sequencer"},
              "ts": rfc3339(now), "previous": previous_note})
    return tree


def checkpoint_due(shard: Shard, now: datetime, policy: Policy) -> bool:
    grown = shard.size - shard.checkpoint_size
    if grown <= 0:
        return False
    last = shard.checkpoint_at or shard.opened_at
    return grown >= policy.checkpoint_every or now - _aware(last) >= timedelta(seconds=policy.checkpoint_seconds)


def _maybe_checkpoint(session: Session, signer: NoteSigner, shard: Shard, now: datetime, policy: Policy) -> None:
    if checkpoint_due(shard, now, policy):
        _checkpoint(session, signer, shard, now, final=False)


def checkpoint_now(session: Session, signer: NoteSigner, now: datetime) -> Checkpoint | None:
    """Sign a checkpoint of the open shard at its current size (if it grew since the last one)."""
    if not try_lead(session):
        return None
    shard = _open(session)
    if shard is None or shard.size == shard.checkpoint_size:
        return None
    return _checkpoint(session, signer, shard, now, final=False)


def _checkpoint(session: Session, signer: NoteSigner, shard: Shard, now: datetime, *, final: bool) -> Checkpoint:
    existing = session.scalars(
        select(Checkpoint).where(Checkpoint.shard == shard.shard, Checkpoint.size == shard.size)
    ).first()
    if existing is not None:
        # A closed shard's final checkpoint is the one at its final size, whether or not it was
        # signed before the month ended (rows are append-only, so it is not re-flagged).
        return existing
    root = MerkleFrontier.from_bytes(shard.frontier).root()
    body = signed_note.format_checkpoint(shard.origin, shard.size, root)
    note = signed_note.sign_note(body, signer.name, signer.sign, signer.public_key)
    checkpoint = Checkpoint(shard=shard.shard, size=shard.size, root=root, note=note, kid=signer.kid,
                            final=final, created_at=now)
    session.add(checkpoint)
    shard.checkpoint_size = shard.size
    shard.checkpoint_at = now
    session.flush()
    return checkpoint


def _ensure_partition(session: Session, month: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    # Look before creating: only the table's owner may add a partition, and a least-privilege app role is
    # not the owner (docs/AUDIT.md); the owner prepares partitions ahead with `audit partitions`.
    if session.scalar(text("SELECT to_regclass(:name)"), {"name": partition_name(month)}) is None:
        create_partition(session, month)


def create_partition(session: Session, month: str) -> None:
    """Create the PostgreSQL partition of ``audit_entries`` for a month, guarded like its parent."""
    name = partition_name(month)
    session.execute(text(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_entries FOR VALUES IN ('{month}')"
    ))
    # Row triggers are inherited from the parent; TRUNCATE triggers are not.
    session.execute(text(f"DROP TRIGGER IF EXISTS {name}_no_truncate ON {name}"))
    session.execute(text(
        f"CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
    ))


def prepare_partitions(session: Session, now: datetime, months_ahead: int) -> list[str]:
    """Create the missing partitions from ``now``'s month to ``months_ahead`` months later; returns them.

    Run by the owner role ahead of time, so that the app role, which may not create tables, finds the
    partition of a new month ready when the month begins. Nothing to do on SQLite.
    """
    if session.get_bind().dialect.name != "postgresql":
        return []
    created = []
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    for step in range(months_ahead + 1):
        shard = f"{year + (month - 1 + step) // 12:04d}-{(month - 1 + step) % 12 + 1:02d}"
        if session.scalar(text("SELECT to_regclass(:name)"), {"name": partition_name(shard)}) is None:
            create_partition(session, shard)
            created.append(shard)
    return created


def partition_name(month: str) -> str:
    year, mon = month.split("-")
    if not (year.isdigit() and mon.isdigit()):
        raise ValueError(f"not a shard name: {month!r}")
    return f"audit_entries_y{year}m{mon}"


def _aware(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were stored as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
