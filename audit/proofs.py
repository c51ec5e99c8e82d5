"""RFC 9162 proofs served from a shard's stored tree (``audit.tree``): O(log n) hashes read per proof."""

from __future__ import annotations

from sqlalchemy.orm import Session

from audit import rfc9162, tree
from audit.errors import ProofUnavailable
from audit.models import Shard

__all__ = ["ProofUnavailable", "consistency", "frontier_at", "inclusion"]

frontier_at = tree.frontier_at


def _require_size(session: Session, shard: str, size: int) -> None:
    row = session.get(Shard, shard)
    if row is None or row.status == "purged":
        raise ProofUnavailable(f"shard {shard} is not stored (never opened, or purged by retention)")
    if size > row.size:
        raise ProofUnavailable(f"shard {shard} has {row.size} entries, fewer than {size}")


def inclusion(session: Session, shard: str, index: int, size: int) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofUnavailable(f"index {index} is not inside a tree of size {size}")
    _require_size(session, shard, size)
    return tree.prove(session, shard, lambda hasher: rfc9162.inclusion_proof(index, size, hasher))


def consistency(session: Session, shard: str, old_size: int, new_size: int) -> list[bytes]:
    if not 0 < old_size <= new_size:
        raise ProofUnavailable(f"no consistency proof from size {old_size} to {new_size}")
    _require_size(session, shard, new_size)
    return tree.prove(session, shard, lambda hasher: rfc9162.consistency_proof(old_size, new_size, hasher))
