"""RFC 9162 proofs served from the stored leaf hashes of a shard."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import rfc9162
from audit.errors import AuditError
from audit.models import Entry


class ProofUnavailable(AuditError):
    """The leaves a proof needs are not stored (out of range, or purged by retention)."""

    code = "proof_unavailable"


def _subtree_hasher(session: Session, shard: str) -> rfc9162.SubtreeHash:
    def subtree_hash(start: int, end: int) -> bytes:
        leaves = list(session.scalars(
            select(Entry.leaf_hash).where(Entry.shard == shard, Entry.seq >= start, Entry.seq < end)
            .order_by(Entry.seq)
        ))
        if len(leaves) != end - start:
            raise ProofUnavailable(f"leaves [{start}, {end}) of {shard} are not stored (purged?)")
        return rfc9162.root(leaves)

    return subtree_hash


def inclusion(session: Session, shard: str, index: int, size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofUnavailable(f"index {index} is not inside a tree of size {size}")
    return rfc9162.inclusion_proof(index, size, _subtree_hasher(session, shard))


def consistency(session: Session, shard: str, old_size: int, new_size: int) -> list[bytes]:
    if not 0 < old_size <= new_size:
        raise ProofUnavailable(f"no consistency proof from size {old_size} to {new_size}")
    return rfc9162.consistency_proof(old_size, new_size, _subtree_hasher(session, shard))


def frontier_at(session: Session, shard: str, size: int, chunk: int = 50_000) -> rfc9162.MerkleFrontier:
    """The compact range [0, size) of a shard, read in chunks (constant memory in the shard size)."""
    frontier = rfc9162.MerkleFrontier()
    start = 0
    while start < size:
        stop = min(size, start + chunk)
        leaves = list(session.scalars(
            select(Entry.leaf_hash).where(Entry.shard == shard, Entry.seq >= start, Entry.seq < stop)
            .order_by(Entry.seq)
        ))
        if len(leaves) != stop - start:
            raise ProofUnavailable(f"leaves [{start}, {stop}) of {shard} are not stored")
        frontier.extend(leaves)
        start = stop
    return frontier
