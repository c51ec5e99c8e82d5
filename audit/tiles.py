"""A shard's Merkle tree as C2SP tlog-tiles (https://c2sp.org/tlog-tiles), read from the stored tree.

A tile at level ``L`` and index ``N`` holds the hashes of up to 256 consecutive nodes at tree level ``8 * L``,
starting at node ``256 * N``: level 0 the leaf hashes (``audit_entries.leaf_hash``), level 1 the hashes of
complete 256-leaf subtrees, level 2 of complete 65,536-leaf subtrees, and so on. Those are nodes the
sequencer stores in ``audit_nodes`` (every level from ``audit.tree.STORED_FROM_LEVEL`` up), so a tile is one
range read; a node that is not stored (a shard from before ``audit_nodes``) is rebuilt from its leaves.

An entry bundle ``tile/entries/N`` holds the entries of the level-0 tile ``N`` themselves, the bytes whose
leaf hashes that tile lists, each as a big-endian uint16 length and the bytes.

Only what a signed checkpoint covers is served: the tree of the shard's latest checkpoint bounds every
tile, so a client never sees a hash that no checkpoint commits to. A tile that tree fills is *full* (256
hashes) and never changes; at its right edge the tile is *partial*, ``tile/L/N.p/W`` with ``W`` in 1..255.
Any width up to what the checkpoint covers is served: a tile of width ``W`` is the first ``W`` hashes
of the full tile, the same bytes whichever checkpoint a client holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import tree
from audit.errors import AuditError, FormatError, ProofUnavailable
from audit.models import Checkpoint, Entry, Node

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
MAX_LEVEL = 63
"""The largest level a path may name (tlog-tiles); levels whose nodes no tree of 2**63 leaves has are empty."""
MAX_ENTRY_SIZE = 0xFFFF

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_GROUPS = 7  # index digits: 21 (the largest index of a tree of 2**63 leaves has 17)
_GROUP = re.compile(r"x[0-9]{3}")


class TilePathError(FormatError):
    """A tile path that is not a canonical tlog-tiles path."""

    code = "invalid_tile_path"


class TileUnavailable(AuditError):
    """The tile is beyond the shard's latest checkpoint, or its hashes or entries are not stored (purged)."""

    code = "tile_not_found"


class EntryTooLarge(AuditError):
    """An entry longer than a uint16 length prefix can state cannot go into an entry bundle."""

    code = "entry_too_large"


@dataclass(frozen=True)
class Tile:
    """``tile/<level>/<index>[.p/<width>]``, or with ``entries`` set ``tile/entries/<index>[.p/<width>]``."""

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL or (self.entries and self.level != 0):
            raise TilePathError(f"tile level {self.level} is out of range")
        if self.index < 0:
            raise TilePathError("a tile index is not negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TilePathError(f"a tile's width is 1 to {TILE_WIDTH}, not {self.width}")

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        return format_path(self)


def format_index(index: int) -> str:
    """``1234067`` as ``x001/x234/067``: groups of three digits, all but the last prefixed with ``x``."""
    if index < 0:
        raise ValueError("a tile index is not negative")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def format_path(tile: Tile) -> str:
    level = "entries" if tile.entries else str(tile.level)
    suffix = f".p/{tile.width}" if tile.partial else ""
    return f"tile/{level}/{format_index(tile.index)}{suffix}"


def parse_path(path: str) -> Tile:
    """The tile a canonical path names (``tile/…``); TilePathError for anything else.

    Canonical: no leading zero groups (``x000/…``), no leading zeros in the level or the width, and a
    ``.p/W`` suffix only for a width below 256 — so each tile has exactly one path.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TilePathError(f"not a tile path: {path!r}")
    level_part, rest = parts[1], parts[2:]
    entries = level_part == "entries"
    if len(rest) > _MAX_GROUPS + 1 or (len(level_part) > 2 and not entries):
        raise TilePathError(f"tile path out of range: {path[:100]!r}")
    if not entries and not _DECIMAL.fullmatch(level_part):
        raise TilePathError(f"bad tile level in {path!r}")
    width = TILE_WIDTH
    if rest[-1:] and rest[-2:-1] and rest[-2].endswith(".p"):
        if not _DECIMAL.fullmatch(rest[-1]) or len(rest[-1]) > 3:
            raise TilePathError(f"bad partial width in {path!r}")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    if not rest or any(not _GROUP.fullmatch(group) for group in rest[:-1]) or not re.fullmatch(r"[0-9]{3}", rest[-1]):
        raise TilePathError(f"bad tile index in {path!r}")
    index = int("".join(group.lstrip("x") for group in rest))
    level = 0 if entries else int(level_part)
    if level > MAX_LEVEL:
        raise TilePathError(f"tile level {level} is out of range")
    tile = Tile(level=level, index=index, width=width, entries=entries)
    if format_path(tile) != path:
        raise TilePathError(f"not the canonical path of its tile: {path!r} (that is {format_path(tile)!r})")
    return tile


def signed_size(session: Session, shard: str) -> int:
    """The size of the shard's latest checkpoint (0 if none): how far its tiles are served."""
    size = session.scalar(select(Checkpoint.size).where(Checkpoint.shard == shard)
                          .order_by(Checkpoint.size.desc()).limit(1))
    return int(size) if size is not None else 0


def width_at(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) has in the tree of ``size`` leaves (0 to 256)."""
    nodes = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def read_tile(session: Session, shard: str, tile: Tile) -> bytes:
    """The bytes of a hash tile or an entry bundle, as the shard's latest checkpoint covers it."""
    available = width_at(tile.level, tile.index, signed_size(session, shard))
    if tile.width > available:
        raise TileUnavailable(f"{tile.path} of {shard} is beyond its latest checkpoint"
                              + (f" (width {available} there)" if available else ""))
    start = tile.index * TILE_WIDTH
    if tile.entries:
        return _bundle(_bodies(session, shard, start, start + tile.width))
    if tile.level == 0:
        return b"".join(_leaf_hashes(session, shard, start, start + tile.width))
    return b"".join(_node_hashes(session, shard, TILE_HEIGHT * tile.level, start, start + tile.width))


def _bundle(bodies: Sequence[bytes]) -> bytes:
    out = bytearray()
    for body in bodies:
        if len(body) > MAX_ENTRY_SIZE:
            raise EntryTooLarge(f"an entry of {len(body)} bytes does not fit an entry bundle")
        out += len(body).to_bytes(2, "big") + body
    return bytes(out)


def _bodies(session: Session, shard: str, start: int, end: int) -> list[bytes]:
    rows = session.scalars(select(Entry.body).where(Entry.shard == shard, Entry.seq >= start, Entry.seq < end)
                           .order_by(Entry.seq))
    found = [bytes(body) for body in rows]
    if len(found) != end - start:
        raise TileUnavailable(f"entries [{start}, {end}) of {shard} are not stored (purged?)")
    return found


def _leaf_hashes(session: Session, shard: str, start: int, end: int) -> list[bytes]:
    rows = session.scalars(select(Entry.leaf_hash).where(Entry.shard == shard, Entry.seq >= start,
                                                         Entry.seq < end).order_by(Entry.seq))
    found = [bytes(digest) for digest in rows]
    if len(found) != end - start:
        raise TileUnavailable(f"leaves [{start}, {end}) of {shard} are not stored (purged?)")
    return found


def _node_hashes(session: Session, shard: str, level: int, start: int, end: int) -> list[bytes]:
    """Nodes ``[start, end)`` of tree level ``level``: one range read of ``audit_nodes``."""
    rows = session.execute(select(Node.index, Node.hash).where(
        Node.shard == shard, Node.level == level, Node.index >= start, Node.index < end))
    found = {int(index): bytes(digest) for index, digest in rows}
    missing = [i for i in range(start, end) if i not in found]
    if missing:
        try:
            rebuilt = tree.subtree_hashes(session, shard, [(i << level, (i + 1) << level) for i in missing])
        except ProofUnavailable as error:
            raise TileUnavailable(str(error)) from error
        found.update({i: rebuilt[(i << level, (i + 1) << level)] for i in missing})
    return [found[i] for i in range(start, end)]
