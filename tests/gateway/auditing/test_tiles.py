"""The audit log as C2SP tlog-tiles, read the way an independent tile client reads it.

The client here uses none of the project's tree code: it fetches the checkpoint, the level-0 and level-1
tiles its size needs (full and partial), recomputes the RFC 9162 root with its own few lines, and checks
the entry bundles against the level-0 hashes.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from audit import signed_note, tiles
from audit.models import Checkpoint, Entry
from gateway.auditing.runner import note_signer
from gateway.core.db import db
from tests.conftest import ISSUER
from tests.factories import bearer, make_app_client, token_for
from tests.gateway.auditing.synthetic_shard import write_shard

SHARD = "2026-09"
SIZE = 70_000  # more than 256 * 256: a full level-1 tile, a partial one and a level-2 node
BASE = f"/v1/audit/shards/{SHARD}"


# --- the client's own RFC 9162 -----------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 over leaf (or subtree) hashes already computed."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return _sha(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:]))


def _root_from_tiles(size: int, level0: dict[int, bytes], level1: dict[int, bytes]) -> bytes:
    """The root of ``size`` leaves: complete 65,536-leaf subtrees from level-1 tiles, the rest from level 0."""
    leaves = [t[i:i + 32] for _, t in sorted(level0.items()) for i in range(0, len(t), 32)]
    nodes256 = [t[i:i + 32] for _, t in sorted(level1.items()) for i in range(0, len(t), 32)]
    assert len(nodes256) == size // 256
    # Every complete 256-leaf subtree the level-0 tiles hold equals the level-1 tile's hash of it.
    for n in range(len(nodes256)):
        if n * 256 + 256 <= len(leaves):
            assert _mth(leaves[n * 256:(n + 1) * 256]) == nodes256[n], n
    # MTH splits at powers of two, so the tree is the 256-leaf subtrees (as a tree of their own, they
    # split the same way) followed by the leaves past the last complete one.
    parts: list[bytes] = []
    start = 0
    for bit in reversed(range(size.bit_length())):
        width = 1 << bit
        if size & width:
            if width >= 256:
                parts.append(_mth(nodes256[start // 256:(start + width) // 256]))
            else:
                parts.append(_mth(leaves[start:start + width]))
            start += width
    root = parts[-1]
    for part in reversed(parts[:-1]):
        root = _sha(b"\x01" + part + root)
    return root


def _index_path(index: int) -> str:
    digits = f"{index:d}"
    digits = digits.zfill((len(digits) + 2) // 3 * 3)
    groups = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def _tile_url(level: int | str, index: int, width: int = 256) -> str:
    suffix = f".p/{width}" if width < 256 else ""
    return f"{BASE}/tile/{level}/{_index_path(index)}{suffix}"


def _parse_checkpoint(note: str) -> tuple[str, int, bytes]:
    origin, size, root = note.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def _entries(bundle: bytes) -> list[bytes]:
    found, at = [], 0
    while at < len(bundle):
        length = int.from_bytes(bundle[at:at + 2], "big")
        found.append(bundle[at + 2:at + 2 + length])
        at += 2 + length
    assert at == len(bundle)
    return found


# --- fixtures --------------------------------------------------------------------------------------------


def _sign(app: Flask, size: int) -> None:
    """A checkpoint of the first ``size`` entries of the synthetic shard, signed with the gateway's key."""
    with app.app_context(), db.unit_of_work() as session:
        leaves = [bytes(h) for h in session.scalars(
            select(Entry.leaf_hash).where(Entry.shard == SHARD, Entry.seq < size).order_by(Entry.seq))]
        root = _mth(leaves)
        signer = note_signer(session, ISSUER)
        body = signed_note.format_checkpoint(f"gateway.test/audit/{SHARD}", size, root)
        note = signed_note.sign_note(body, signer.name, signer.sign, signer.public_key)
        session.add(Checkpoint(shard=SHARD, size=size, root=root, note=note, kid=signer.kid, final=False,
                               created_at=datetime(2026, 9, 30, tzinfo=UTC)))


@pytest.fixture
def token(app: Flask, client: FlaskClient) -> str:
    auditor = make_app_client(app, name="Tile Client")
    with app.app_context(), db.unit_of_work() as session:
        write_shard(session, SHARD, SIZE)
    return token_for(client, auditor, scope="audit:read")


# --- tests -----------------------------------------------------------------------------------------------


def test_a_tile_client_recomputes_the_checkpointed_root(app: Flask, client: FlaskClient, token: str) -> None:
    auth = bearer(token)
    assert client.get(f"{BASE}/checkpoint", headers=auth).status_code == 404  # nothing signed yet
    assert client.get(_tile_url(0, 0), headers=auth).status_code == 404
    for signed in (SIZE - 1_000, SIZE):
        _sign(app, signed)
        answer = client.get(f"{BASE}/checkpoint", headers=auth)
        assert answer.status_code == 200
        assert answer.mimetype == "text/plain"
        assert answer.mimetype_params.get("charset") == "utf-8"
        origin, size, root = _parse_checkpoint(answer.get_data(as_text=True))
        assert (origin, size) == (f"gateway.test/audit/{SHARD}", signed)

        level0: dict[int, bytes] = {}
        for n in range(size // 256):
            full = client.get(_tile_url(0, n), headers=auth)
            assert full.status_code == 200
            assert len(full.data) == 256 * 32
            assert "immutable" in full.headers["Cache-Control"]
            level0[n] = full.data
        if size % 256:
            partial = client.get(_tile_url(0, size // 256, size % 256), headers=auth)
            assert partial.status_code == 200
            assert len(partial.data) == size % 256 * 32
            assert "immutable" not in partial.headers["Cache-Control"]
            level0[size // 256] = partial.data
            # Its full tile is not there yet: the checkpoint does not cover it.
            assert client.get(_tile_url(0, size // 256), headers=auth).status_code == 404
        level1: dict[int, bytes] = {}
        nodes = size // 256
        for n in range(nodes // 256 + (1 if nodes % 256 else 0)):
            width = min(256, nodes - n * 256)
            tile = client.get(_tile_url(1, n, width), headers=auth)
            assert tile.status_code == 200
            assert len(tile.data) == width * 32
            level1[n] = tile.data
        assert _root_from_tiles(size, level0, level1) == root
        # A level-2 tile has one hash, of the first 65,536 leaves: the level-1 tile 0 hashes to it.
        level2 = client.get(_tile_url(2, 0, 1), headers=auth)
        assert level2.status_code == 200
        assert level2.data == _mth([level1[0][i:i + 32] for i in range(0, 8192, 32)])

    # Beyond the checkpoint: the next tile, a wider partial tile, a tile of a level that does not exist.
    assert client.get(_tile_url(0, SIZE // 256 + 1), headers=auth).status_code == 404
    assert client.get(_tile_url(0, SIZE // 256, SIZE % 256 + 1), headers=auth).status_code == 404
    assert client.get(_tile_url(1, 1), headers=auth).status_code == 404
    assert client.get(_tile_url(3, 0, 1), headers=auth).status_code == 404
    # A narrower partial tile is a prefix of the wider one (what a client holding an older checkpoint asks).
    narrow = client.get(_tile_url(0, SIZE // 256, 5), headers=auth)
    assert narrow.status_code == 200
    assert narrow.data == level0[SIZE // 256][:5 * 32]


def test_entry_bundles_hold_the_entries_the_level0_tiles_hash(app: Flask, client: FlaskClient,
                                                                token: str) -> None:
    _sign(app, SIZE)
    auth = bearer(token)
    for index, width in ((0, 256), (3, 256), (SIZE // 256, SIZE % 256)):
        bundle = client.get(_tile_url("entries", index, width), headers=auth)
        hashes = client.get(_tile_url(0, index, width), headers=auth)
        assert bundle.status_code == hashes.status_code == 200
        entries = _entries(bundle.data)
        assert len(entries) == width
        assert [_sha(b"\x00" + e) for e in entries] == [hashes.data[i:i + 32] for i in range(0, width * 32, 32)]
        assert b'"seq":%d' % (index * 256) in entries[0]
    assert client.get(_tile_url("entries", SIZE // 256), headers=auth).status_code == 404


def test_tile_paths_are_encoded_in_groups_of_three(app: Flask, client: FlaskClient, token: str) -> None:
    assert _index_path(1234067) == "x001/x234/067"
    for index, path in ((0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")):
        assert tiles.format_index(index) == path
        assert tiles.parse_path(f"tile/0/{path}") == tiles.Tile(level=0, index=index)
    assert tiles.parse_path("tile/entries/x001/000.p/7") == tiles.Tile(0, 1000, 7, entries=True)
    assert tiles.Tile(2, 1234067, 9).path == "tile/2/x001/x234/067.p/9"
    _sign(app, SIZE)
    auth = bearer(token)
    assert client.get(_tile_url(0, 272), headers=auth).status_code == 200  # a three-digit index
    malformed = ["0/1", "0/0001", "0/x000/001", "0/x1/001", "00/000", "0/000.p/0", "0/000.p/256",
                 "0/000.p/007", "0/000.p", "entries/000.p/", "64/000", "a/000", "0/000/", "-1/000", "0/x001"]
    for rest in malformed:
        answer = client.get(f"{BASE}/tile/{rest}", headers=auth)
        assert answer.status_code in (400, 404), rest
        if answer.status_code == 400:
            assert answer.get_json()["code"] == "invalid_tile_path", rest
    assert client.get("/v1/audit/shards/2026-13/tile/0/000", headers=auth).status_code == 400
    assert client.get("/v1/audit/shards/2026-13/checkpoint", headers=auth).status_code == 400
    assert client.get("/v1/audit/shards/2026-08/tile/0/000", headers=auth).status_code == 404  # no such shard


def test_tiles_need_audit_read(app: Flask, client: FlaskClient, token: str) -> None:
    _sign(app, SIZE)
    assert client.get(f"{BASE}/checkpoint").status_code == 401
    assert client.get(_tile_url(0, 0)).status_code == 401
    other = make_app_client(app, name="No Audit")
    narrow = token_for(client, other, scope="consent:read")
    assert client.get(_tile_url(0, 0), headers=bearer(narrow)).status_code == 403
