"""A large shard written straight into the tables, for proof tests and ``bench/audit_proofs.py``.

Sequencing 10^5 to 10^6 real entries costs minutes; proofs only need what the sequencer leaves behind:
gap-free leaves with their hashes, the shard row with its frontier, and the interior nodes. The nodes come
from the sequencer's own code (``MerkleFrontier.append`` reporting completed subtrees, ``audit.tree.node_rows``),
so what is measured is what the gateway stores; only the entry bodies are small stand-ins.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import ORMExecuteState, Session

from audit import sequencer, tree
from audit.models import Entry, Node, Shard
from audit.rfc9162 import MerkleFrontier, leaf_hash

_ENTRIES = insert(Entry.metadata.tables[Entry.__tablename__])
_NODES = insert(Node.metadata.tables[Node.__tablename__])
_TRANSACTION_CONTROL = frozenset({"BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"})


def body(shard: str, seq: int) -> bytes:
    return b'{"action":"test.synthetic","seq":%d,"shard":"%s"}' % (seq, shard.encode())


def write_shard(session: Session, shard: str, size: int, *, chunk: int = 20_000) -> MerkleFrontier:
    """Write ``size`` entries and their tree into ``shard`` (new, open) in the caller's transaction; returns
    the tree's frontier (its root is what a proof of any size-``size`` tree must lead to)."""
    if session.get_bind().dialect.name == "postgresql":
        sequencer.create_partition(session, shard)
    ts = datetime.strptime(shard, "%Y-%m").replace(tzinfo=UTC)
    frontier = MerkleFrontier()
    connection = session.connection()
    for start in range(0, size, chunk):
        rows: list[dict[str, Any]] = []
        completed: list[tuple[int, int, bytes]] = []
        for seq in range(start, min(size, start + chunk)):
            data = body(shard, seq)
            digest = leaf_hash(data)
            frontier.append(digest, completed)
            rows.append({"shard": shard, "seq": seq, "ts": ts, "action": "test.synthetic", "subject": None,
                         "client_id": None, "consent_id": None, "body": data, "leaf_hash": digest})
        connection.execute(_ENTRIES, rows)
        nodes = tree.node_rows(shard, completed)
        if nodes:
            connection.execute(_NODES, nodes)
    session.add(Shard(shard=shard, origin=f"gateway.test/audit/{shard}", size=size, frontier=frontier.to_bytes(),
                      status="open", opened_at=ts, checkpoint_size=0, checkpoint_at=ts))
    session.flush()
    return frontier


@dataclass
class Reads:
    statements: int = 0
    rows: int = 0
    sql: list[str] = field(default_factory=list)


@contextmanager
def counting_reads(session: Session) -> Iterator[Reads]:
    """Count the SQL statements ``session`` sends and the rows they return while the block runs."""
    reads = Reads()

    def on_orm_execute(state: ORMExecuteState) -> Any:
        frozen = state.invoke_statement().freeze()
        reads.rows += len(frozen().all())
        return frozen()

    def on_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() in _TRANSACTION_CONTROL:
            return
        reads.statements += 1
        reads.sql.append(statement)

    engine = session.get_bind()
    event.listen(session, "do_orm_execute", on_orm_execute)
    event.listen(engine, "before_cursor_execute", on_cursor_execute)
    try:
        yield reads
    finally:
        event.remove(session, "do_orm_execute", on_orm_execute)
        event.remove(engine, "before_cursor_execute", on_cursor_execute)
