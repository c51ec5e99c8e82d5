"""A shard's stored Merkle tree, and reading any set of its subtree hashes in a constant number of statements.

The leaves are ``audit_entries.leaf_hash``; interior nodes from level ``STORED_FROM_LEVEL`` up are rows of
``audit_nodes``, written by the sequencer in the transaction that completes them. An RFC 9162 proof (or a
compact range) needs O(log n) complete, aligned subtrees; each is either one stored node or, below
``STORED_FROM_LEVEL``, at most ``2**STORED_FROM_LEVEL - 1`` leaf hashes. So a proof costs two SELECTs (leaves,
nodes) of O(log n) rows, whatever the shard's size.

Levels 1 to 3 are not stored: they would be seven eighths of the node rows, and rebuilding one of them
reads at most eight leaf hashes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Executable, bindparam, select, union_all
from sqlalchemy.orm import Session

from audit import rfc9162
from audit.errors import ProofUnavailable
from audit.models import Entry, Node

STORED_FROM_LEVEL = 4

Subtree = tuple[int, int]
"""Leaves ``[start, end)`` of a complete, aligned subtree."""

# A node that should be stored but is not (a shard sequenced before audit_nodes existed and not
# backfilled) is rebuilt from its leaves, read this many at a time.
_CHUNK = 50_000


def node_rows(shard: str, completed: Iterable[tuple[int, int, bytes]]) -> list[dict[str, Any]]:
    """Rows of ``audit_nodes`` for the subtrees a frontier reported complete (see MerkleFrontier.append)."""
    return [{"shard": shard, "level": level, "idx": index, "hash": digest}
            for level, index, digest in completed if level >= STORED_FROM_LEVEL]


def subtree_hashes(session: Session, shard: str, wanted: Iterable[Subtree]) -> dict[Subtree, bytes]:
    """The hashes of the complete, aligned subtrees ``wanted``; ProofUnavailable if a leaf is not stored."""
    subtrees = set(wanted)
    leaf_indices: set[int] = set()
    node_indices: dict[int, set[int]] = {}
    for start, end in subtrees:
        level = _level(start, end)
        if level < STORED_FROM_LEVEL:
            leaf_indices.update(range(start, end))
        else:
            node_indices.setdefault(level, set()).add(start >> level)
    leaves = _leaves(session, shard, leaf_indices)
    nodes = _nodes(session, shard, node_indices)
    found: dict[Subtree, bytes] = {}
    for start, end in subtrees:
        level = _level(start, end)
        if level < STORED_FROM_LEVEL:
            try:
                found[(start, end)] = rfc9162.root([leaves[i] for i in range(start, end)])
            except KeyError:
                raise ProofUnavailable(f"leaves [{start}, {end}) of {shard} are not stored (purged?)") from None
        else:
            stored = nodes.get((level, start >> level))
            found[(start, end)] = stored if stored is not None else _rebuilt(session, shard, start, end)
    return found


def prove(session: Session, shard: str, build: Callable[[rfc9162.SubtreeHash], list[bytes]]) -> list[bytes]:
    """Run a proof builder of ``audit.rfc9162`` against the stored tree, reading all it needs at once.

    The subtrees a proof asks for depend only on the sizes, never on hash values, so a first run with
    placeholder hashes names them all; they are read in one go, and the second run builds the proof.
    """
    wanted: list[Subtree] = []

    def record(start: int, end: int) -> bytes:
        wanted.append((start, end))
        return bytes(rfc9162.HASH_SIZE)

    build(record)
    known = subtree_hashes(session, shard, wanted)
    return build(lambda start, end: known[(start, end)])


def compact_range(size: int) -> list[Subtree]:
    """The complete, aligned subtrees that make up leaves [0, size), largest (leftmost) first."""
    subtrees = []
    start = 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            subtrees.append((start, start + (1 << bit)))
            start += 1 << bit
    return subtrees


def frontier_at(session: Session, shard: str, size: int) -> rfc9162.MerkleFrontier:
    """The compact range [0, size) of a shard (what a verifier needs before a range starting at ``size``)."""
    subtrees = compact_range(size)
    known = subtree_hashes(session, shard, subtrees)
    return rfc9162.MerkleFrontier.from_hashes(0, size, [known[s] for s in subtrees])


def _level(start: int, end: int) -> int:
    width = end - start
    if width <= 0 or width & (width - 1) or start % width:
        raise ValueError(f"[{start}, {end}) is not a complete, aligned subtree")
    return width.bit_length() - 1


def _leaves(session: Session, shard: str, indices: set[int]) -> dict[int, bytes]:
    if not indices:
        return {}
    rows = session.execute(_LEAVES, {"shard": shard, "seqs": sorted(indices)})
    return {seq: bytes(digest) for seq, digest in rows}


def _nodes(session: Session, shard: str, by_level: dict[int, set[int]]) -> dict[tuple[int, int], bytes]:
    keys = sorted((level, index) for level, indices in by_level.items() for index in indices)
    if not keys:
        return {}
    params: dict[str, Any] = {"shard": shard}
    for number, (level, index) in enumerate(keys):
        params[f"level_{number}"] = level
        params[f"index_{number}"] = index
    rows = session.execute(_nodes_statement(len(keys)), params)
    return {(level, index): bytes(digest) for level, index, digest in rows}


# Built once: a proof's statements differ only in their parameters, so building them per proof cost more
# than running them.
_LEAVES = select(Entry.seq, Entry.leaf_hash).where(
    Entry.shard == bindparam("shard"), Entry.seq.in_(bindparam("seqs", expanding=True)))


@functools.cache
def _nodes_statement(count: int) -> Executable:
    # One SELECT a node, joined: each part is an equality on the whole primary key (shard, level, idx), which
    # every planner answers with one index lookup. An OR of the levels made SQLite scan the shard's nodes, and
    # PostgreSQL, with stale statistics, filtered a level's nodes instead of looking two of them up.
    parts = [select(Node.level, Node.index, Node.hash).where(
        Node.shard == bindparam("shard"), Node.level == bindparam(f"level_{number}"),
        Node.index == bindparam(f"index_{number}"))
        for number in range(count)]
    return parts[0] if count == 1 else union_all(*parts)


def _rebuilt(session: Session, shard: str, start: int, end: int) -> bytes:
    frontier = rfc9162.MerkleFrontier(start)
    while frontier.end < end:
        stop = min(end, frontier.end + _CHUNK)
        leaves: Sequence[bytes] = list(session.scalars(
            select(Entry.leaf_hash).where(Entry.shard == shard, Entry.seq >= frontier.end, Entry.seq < stop)
            .order_by(Entry.seq)
        ))
        if len(leaves) != stop - frontier.end:
            raise ProofUnavailable(f"leaves [{frontier.end}, {stop}) of {shard} are not stored (purged?)")
        frontier.extend(leaves)
    (digest,) = frontier.hashes()
    return digest
