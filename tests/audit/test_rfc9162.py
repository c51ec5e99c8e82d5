"""RFC 9162 Merkle trees against the RFC 6962 reference vectors and a literal recursive reading of the RFC."""

from __future__ import annotations

import hashlib
import random

import pytest

from audit.errors import ConsistencyProofError, FormatError, InclusionProofError
from audit.rfc9162 import (
    EMPTY_ROOT,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    subtree_hasher,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency merkle_tree_test.cc / transparency-dev/merkle reference data (0-based indices).
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
REF_HASHES = [leaf_hash(leaf) for leaf in LEAVES]
MAX_SIZE = 300
DATA = [b"entry-%d" % i for i in range(MAX_SIZE)]
HASHES = [leaf_hash(d) for d in DATA]


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, word for word."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1."""
    n = len(data)
    if m == n:
        return [] if whole else [naive_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, data[:k], whole), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


def flipped(digest: bytes) -> bytes:
    return bytes([digest[0] ^ 1]) + digest[1:]


def sampled_pairs(limit: int, count: int) -> list[tuple[int, int]]:
    rng = random.Random(9162)
    return [(rng.randrange(1, limit + 1), rng.randrange(1, limit + 1)) for _ in range(count)]


def test_reference_roots() -> None:
    for size, expected in enumerate(ROOTS):
        assert root(REF_HASHES[:size]) == expected
    assert ROOTS[0] == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(index, size, subtree_hasher(REF_HASHES))
    assert [p.hex() for p in proof] == path
    verify_inclusion(index, size, REF_HASHES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(old, new, subtree_hasher(REF_HASHES))
    assert [p.hex() for p in proof] == path
    verify_consistency(old, new, proof, ROOTS[old], ROOTS[new])


def test_root_matches_naive_for_every_size_up_to_300() -> None:
    frontier = MerkleFrontier()
    for size in range(1, MAX_SIZE + 1):
        frontier.append(HASHES[size - 1])
        expected = naive_mth(DATA[:size])
        assert root(HASHES[:size]) == expected
        assert frontier.root() == expected
        assert frontier.size == size


def test_inclusion_proofs_for_every_pair_up_to_64_and_sampled_to_300() -> None:
    pairs = [(i, n) for n in range(1, 65) for i in range(n)]
    pairs += [(i % n, n) for i, n in sampled_pairs(MAX_SIZE, 400)]
    hasher = subtree_hasher(HASHES)
    for index, size in pairs:
        proof = inclusion_proof(index, size, hasher)
        assert proof == naive_path(index, DATA[:size])
        expected = naive_mth(DATA[:size])
        verify_inclusion(index, size, HASHES[index], proof, expected)
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, size, flipped(HASHES[index]), proof, expected)
        if proof:
            with pytest.raises(InclusionProofError):
                verify_inclusion(index, size, HASHES[index], [*proof[:-1], flipped(proof[-1])], expected)
        if size > 1:
            with pytest.raises(InclusionProofError):
                verify_inclusion((index + 1) % size, size, HASHES[index], proof, expected)


def test_consistency_proofs_for_every_pair_up_to_64_and_sampled_to_300() -> None:
    pairs = [(m, n) for n in range(1, 65) for m in range(1, n + 1)]
    pairs += [(min(a, b), max(a, b)) for a, b in sampled_pairs(MAX_SIZE, 400)]
    hasher = subtree_hasher(HASHES)
    for old, new in pairs:
        proof = consistency_proof(old, new, hasher)
        assert proof == (naive_subproof(old, DATA[:new], True) if old < new else [])
        old_root, new_root = naive_mth(DATA[:old]), naive_mth(DATA[:new])
        verify_consistency(old, new, proof, old_root, new_root)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, proof, flipped(old_root), new_root)
        with pytest.raises(ConsistencyProofError):
            verify_consistency(old, new, proof, old_root, flipped(new_root))
        if proof:
            with pytest.raises(ConsistencyProofError):
                verify_consistency(old, new, [*proof[:-1], flipped(proof[-1])], old_root, new_root)


def test_proof_edge_cases_are_rejected() -> None:
    three = root(HASHES[:3])
    with pytest.raises(InclusionProofError):
        verify_inclusion(3, 3, HASHES[3], [], three)
    proof = inclusion_proof(1, 3, subtree_hasher(HASHES))
    with pytest.raises(InclusionProofError, match="longer"):
        verify_inclusion(1, 3, HASHES[1], [*proof, HASHES[0]], three)
    with pytest.raises(InclusionProofError, match="shorter"):
        verify_inclusion(1, 3, HASHES[1], proof[:-1], three)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(5, 5, subtree_hasher(HASHES))
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(6, 5, subtree_hasher(HASHES))
    # Every tree extends the empty tree, and a tree is consistent only with itself at its own size.
    verify_consistency(0, 7, [], EMPTY_ROOT, root(HASHES[:7]))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(7, 7, [], root(HASHES[:7]), root(HASHES[:6]))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 7, [], three, root(HASHES[:7]))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(8, 7, [HASHES[0]], three, root(HASHES[:7]))
    good = consistency_proof(3, 7, subtree_hasher(HASHES))
    with pytest.raises(ConsistencyProofError, match="too long"):
        verify_consistency(3, 7, [*good, HASHES[0]], three, root(HASHES[:7]))
    with pytest.raises(ConsistencyProofError, match="too short"):
        verify_consistency(3, 7, good[:-1], three, root(HASHES[:7]))


def test_proofs_only_ask_for_complete_aligned_subtrees() -> None:
    asked: list[tuple[int, int]] = []
    plain = subtree_hasher(HASHES)

    def recording(start: int, end: int) -> bytes:
        asked.append((start, end))
        return plain(start, end)

    for size in (1, 2, 7, 64, 100, 255, 300):
        for index in range(0, size, 7):
            inclusion_proof(index, size, recording)
        for old in range(1, size, 11):
            consistency_proof(old, size, recording)
    assert asked
    for start, end in asked:
        width = end - start
        assert width & (width - 1) == 0
        assert start % width == 0


def test_compact_ranges_merge_into_the_frontier() -> None:
    rng = random.Random(6962)
    for _ in range(200):
        size = rng.randrange(1, MAX_SIZE + 1)
        cuts = sorted(rng.sample(range(1, size), min(3, size - 1))) if size > 1 else []
        frontier = MerkleFrontier()
        for lo, hi in zip([0, *cuts], [*cuts, size], strict=True):
            frontier.merge(MerkleFrontier.of_leaves(lo, HASHES[lo:hi]))
        assert frontier.root() == naive_mth(DATA[:size])
        one_by_one = MerkleFrontier()
        for leaf in HASHES[:size]:
            one_by_one.append(leaf)
        assert frontier.hashes() == one_by_one.hashes()


def test_frontier_storage_round_trip() -> None:
    assert MerkleFrontier.from_bytes(b"").root() == EMPTY_ROOT
    for begin, end in ((0, 0), (0, 1), (0, 300), (5, 77), (64, 128)):
        compact = MerkleFrontier.of_leaves(begin, HASHES[begin:end])
        restored = MerkleFrontier.from_bytes(compact.to_bytes())
        assert (restored.begin, restored.end, restored.hashes()) == (begin, end, compact.hashes())
        restored.extend(HASHES[end:MAX_SIZE])
        if begin == 0:
            assert restored.root() == naive_mth(DATA)
    with pytest.raises(FormatError):
        MerkleFrontier.from_bytes(b"\x00" * 17)
    with pytest.raises(FormatError):
        MerkleFrontier.from_hashes(0, 3, [HASHES[0]])
    with pytest.raises(ValueError, match="starting at leaf 0"):
        MerkleFrontier.of_leaves(1, HASHES[1:4]).root()
    with pytest.raises(ValueError, match="cannot append"):
        MerkleFrontier().merge(MerkleFrontier.of_leaves(2, HASHES[2:3]))


def test_node_hash_is_domain_separated_from_leaves() -> None:
    # RFC 9162's 0x00/0x01 prefixes: a leaf whose bytes are two hashes does not hash like their parent.
    assert leaf_hash(HASHES[0] + HASHES[1]) != node_hash(HASHES[0], HASHES[1])
