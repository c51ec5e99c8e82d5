"""RFC 9162 Merkle tree hashes, inclusion and consistency proofs, and compact ranges.

Written by hand from RFC 9162 §2.1 (it is short and specified step by step). Standard library only,
so the offline verifier can use it.

Proof *generation* never needs the leaves themselves: it asks a ``SubtreeHash`` callable for the hash of
complete, aligned subtrees only (``end - start`` a power of two and ``start`` a multiple of it), which a
database can answer from stored leaf hashes or cached interior nodes, O(log n) calls per proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from audit.errors import ConsistencyProofError, FormatError, InclusionProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256

SubtreeHash = Callable[[int, int], bytes]
"""``subtree_hash(start, end)``: MTH of the leaves ``[start, end)`` of a complete, aligned subtree."""


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole tree given its leaf hashes (EMPTY_ROOT for no leaves)."""
    return MerkleFrontier.of_leaves(0, leaf_hashes).root()


def subtree_hasher(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    """A ``SubtreeHash`` over leaf hashes held in memory (tests, small trees)."""

    def subtree_hash(start: int, end: int) -> bytes:
        return root(leaf_hashes[start:end])

    return subtree_hash


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_hash(start: int, end: int, subtree_hash: SubtreeHash) -> bytes:
    # Every range the proof recursions ask for is either complete and aligned or ends at the tree's
    # right edge; splitting at k keeps the left part complete and aligned, so subtree_hash only ever
    # sees complete subtrees.
    n = end - start
    if n & (n - 1) == 0:
        return subtree_hash(start, end)
    k = _largest_power_of_two_below(n)
    return node_hash(subtree_hash(start, start + k), _range_hash(start + k, end, subtree_hash))


def inclusion_proof(index: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    return _path(index, 0, size, subtree_hash)


def _path(index: int, start: int, end: int, subtree_hash: SubtreeHash) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if index < k:
        return [*_path(index, start, start + k, subtree_hash), _range_hash(start + k, end, subtree_hash)]
    return [*_path(index - k, start + k, end, subtree_hash), subtree_hash(start, start + k)]


def consistency_proof(old_size: int, new_size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (empty when old_size is 0 or equal)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof(old_size, 0, new_size, True, subtree_hash)


def _subproof(m: int, start: int, end: int, whole: bool, subtree_hash: SubtreeHash) -> list[bytes]:
    n = end - start
    if m == n:
        # The old tree is this (complete) subtree: the verifier knows its hash unless it is only a part.
        return [] if whole else [subtree_hash(start, end)]
    k = _largest_power_of_two_below(n)
    if m <= k:
        return [*_subproof(m, start, start + k, whole, subtree_hash), _range_hash(start + k, end, subtree_hash)]
    return [*_subproof(m - k, start + k, end, False, subtree_hash), subtree_hash(start, start + k)]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises InclusionProofError unless ``leaf`` is at ``index`` under ``expected_root``."""
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not in a tree of size {size}", index=index)
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise InclusionProofError("inclusion proof is longer than the tree is deep", index=index)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError("inclusion proof is shorter than the tree is deep", index=index)
    if r != expected_root:
        raise InclusionProofError(f"leaf {index} is not included in the tree of size {size}", index=index)


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2; raises ConsistencyProofError unless the new tree extends the old one."""
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(f"size {old_size} cannot precede size {new_size}", index=old_size)
    if old_size in (0, new_size):
        # Nothing to prove beyond equality (and every tree extends the empty one).
        if proof:
            raise ConsistencyProofError("a consistency proof between these sizes must be empty", index=old_size)
        if old_size == new_size and old_root != new_root:
            raise ConsistencyProofError(f"two different roots for size {old_size}", index=old_size)
        return
    if not proof:
        raise ConsistencyProofError("empty consistency proof", index=old_size)
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fr, sr = _consistency_roots(old_size, new_size, path)
    if fr != old_root:
        raise ConsistencyProofError(f"proof does not match the root at size {old_size}", index=old_size)
    if sr != new_root:
        raise ConsistencyProofError(f"proof does not match the root at size {new_size}", index=new_size)


def _consistency_roots(old_size: int, new_size: int, path: list[bytes]) -> tuple[bytes, bytes]:
    """Steps 3 to 6 of RFC 9162 §2.1.4.2: the old and new roots the path leads to."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("consistency proof is too long", index=old_size)
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError("consistency proof is too short", index=old_size)
    return fr, sr


def _shape(begin: int, end: int) -> list[int]:
    """Levels of the complete aligned subtrees that make up the compact range [begin, end), left to right."""
    left: list[int] = []
    right: list[int] = []
    level = 0
    while begin < end:
        if begin & 1:
            left.append(level)
            begin += 1
        if end & 1 and begin < end:
            right.append(level)
            end -= 1
        begin >>= 1
        end >>= 1
        level += 1
    return left + right[::-1]


class MerkleFrontier:
    """A compact range: the fewest complete, aligned subtrees covering leaves [begin, end).

    With ``begin == 0`` (the default) it is the frontier of a tree of size ``end``: O(log n) hashes from
    which ``root()`` is computed and to which leaves are appended, so a sequencer or verifier handles a
    shard of any size in constant memory. Ranges with another ``begin`` are what parallel workers compute
    for a slice of leaves; ``merge`` joins adjacent ranges.
    """

    __slots__ = ("_begin", "_end", "_nodes")

    def __init__(self, begin: int = 0) -> None:
        if begin < 0:
            raise ValueError("a compact range cannot begin before leaf 0")
        self._begin = begin
        self._end = begin
        self._nodes: list[tuple[int, bytes]] = []  # (level, hash), left to right

    @property
    def begin(self) -> int:
        return self._begin

    @property
    def end(self) -> int:
        return self._end

    @property
    def size(self) -> int:
        """Tree size of a frontier: the number of leaves from leaf 0."""
        return self._end

    def hashes(self) -> list[bytes]:
        """The subtree hashes, left to right; their levels follow from (begin, end)."""
        return [h for _, h in self._nodes]

    @classmethod
    def from_hashes(cls, begin: int, end: int, hashes: Sequence[bytes]) -> MerkleFrontier:
        levels = _shape(begin, end)
        if len(hashes) != len(levels) or any(len(h) != HASH_SIZE for h in hashes):
            raise FormatError(f"a compact range [{begin}, {end}) needs {len(levels)} hashes of {HASH_SIZE} bytes")
        frontier = cls(begin)
        frontier._end = end
        frontier._nodes = list(zip(levels, hashes, strict=True))
        return frontier

    @classmethod
    def of_leaves(cls, begin: int, leaf_hashes: Sequence[bytes]) -> MerkleFrontier:
        """The compact range of ``leaf_hashes`` placed at ``begin``, level by level (fast for large batches)."""
        left: list[tuple[int, bytes]] = []
        right: list[tuple[int, bytes]] = []
        lo, hi, level = begin, begin + len(leaf_hashes), 0
        current = list(leaf_hashes)
        while current:
            if lo & 1:
                left.append((level, current[0]))
                current = current[1:]
                lo += 1
            if current and hi & 1:
                right.append((level, current.pop()))
                hi -= 1
            pairs = iter(current)  # zip(pairs, pairs) walks the list two at a time without copying it
            current = [_sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
            lo >>= 1
            hi >>= 1
            level += 1
        frontier = cls(begin)
        frontier._end = begin + len(leaf_hashes)
        frontier._nodes = left + right[::-1]
        return frontier

    def copy(self) -> MerkleFrontier:
        clone = MerkleFrontier(self._begin)
        clone._end = self._end
        clone._nodes = list(self._nodes)
        return clone

    def append(self, leaf: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        """Append one leaf hash; ``completed`` (if given) receives the (level, index, hash) of every complete
        aligned subtree of level >= 1 that this leaf closes, lowest first (a sequencer stores them)."""
        self._push(0, leaf, completed)

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        self.merge(MerkleFrontier.of_leaves(self._end, leaf_hashes))

    def merge(self, other: MerkleFrontier) -> None:
        """Append the adjacent compact range ``other`` (which must begin where this one ends)."""
        if other._begin != self._end:
            raise ValueError(f"cannot append range [{other._begin}, {other._end}) to [{self._begin}, {self._end})")
        for level, digest in other._nodes:
            self._push(level, digest)

    def _push(self, level: int, digest: bytes, completed: list[tuple[int, int, bytes]] | None = None) -> None:
        nodes = self._nodes
        nodes.append((level, digest))
        self._end += 1 << level
        # Two equal subtrees merge when the pair is itself aligned, i.e. the new end is a multiple of
        # twice their width; for a frontier that always holds, for a general range it may not.
        while len(nodes) >= 2 and nodes[-1][0] == nodes[-2][0] and self._end % (2 << nodes[-1][0]) == 0:
            top_level, right_hash = nodes.pop()
            _, left_hash = nodes.pop()
            merged = node_hash(left_hash, right_hash)
            nodes.append((top_level + 1, merged))
            if completed is not None:
                completed.append((top_level + 1, (self._end >> (top_level + 1)) - 1, merged))

    def root(self) -> bytes:
        """MTH(D[0:end]); only a frontier (begin == 0) has a root."""
        if self._begin != 0:
            raise ValueError("only a compact range starting at leaf 0 has a root")
        if not self._nodes:
            return EMPTY_ROOT
        nodes = self._nodes
        digest = nodes[-1][1]
        for _, left in reversed(nodes[:-1]):
            digest = node_hash(left, digest)
        return digest

    def to_bytes(self) -> bytes:
        """Storage form: begin and end as 8-byte big-endian integers, then the hashes."""
        header = self._begin.to_bytes(8, "big") + self._end.to_bytes(8, "big")
        return header + b"".join(self.hashes())

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleFrontier:
        """Inverse of ``to_bytes``; empty bytes are the frontier of an empty tree."""
        if not data:
            return cls()
        if len(data) < 16 or (len(data) - 16) % HASH_SIZE:
            raise FormatError("stored compact range has a bad length")
        begin = int.from_bytes(data[:8], "big")
        end = int.from_bytes(data[8:16], "big")
        if end < begin:
            raise FormatError("stored compact range ends before it begins")
        return cls.from_hashes(begin, end, _chunks(data[16:]))

    def __repr__(self) -> str:
        return f"MerkleFrontier(begin={self._begin}, end={self._end}, hashes={len(self._nodes)})"


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

