"""The audit export bundle: a ZIP64 archive an auditor verifies offline. Layout in docs/AUDIT_BUNDLE.md.

Standard library plus ``audit.rfc9162`` and ``audit.errors`` only, so the offline verifier can read it.
The writer streams: it holds at most one entries file (``ENTRIES_PER_FILE`` entries) in memory whatever
the exported range, and it never re-serialises an entry, it writes the stored bytes as they are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from audit.errors import FormatError
from audit.rfc9162 import HASH_SIZE, MerkleFrontier, leaf_hash

FORMAT = "consent-gateway-audit-bundle"
VERSION = 1
# A power of two, so that every entries file but a range's first is a complete aligned subtree.
ENTRIES_PER_FILE = 1 << 14

MANIFEST = "manifest.json"
VKEYS = "keys/vkeys.txt"
JWKS = "keys/jwks.json"
PURGES = "purges.jsonl"

# Caps that keep a hostile bundle from exhausting the verifier's memory (a zip bomb, one huge line).
MAX_ENTRIES_FILE_BYTES = 256 << 20
MAX_SMALL_FILE_BYTES = 64 << 20

_SHARD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")

_Put = Callable[[str, bytes], None]


def shard_of(moment: datetime) -> str:
    """``YYYY-MM``, the shard (month, UTC) of ``moment``: four digits for every year, so that shard names
    sort as their months do (``strftime`` writes year 999 as ``999`` on some platforms)."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def shard_origin(issuer: str, shard: str) -> str:
    """``<issuer without scheme>/audit/YYYY-MM``: the checkpoint origin of a monthly shard."""
    bare = issuer.split("://", 1)[-1].rstrip("/")
    return f"{bare}/audit/{shard}"


def entries_name(shard: str, start: int) -> str:
    return f"shards/{shard}/entries/{start:012d}.jsonl"


def leaf_hashes_name(shard: str, start: int) -> str:
    return f"shards/{shard}/entries/{start:012d}.leaves"


def checkpoint_name(shard: str, ordinal: int) -> str:
    return f"shards/{shard}/checkpoints/{ordinal:06d}.note"


def proofs_name(shard: str) -> str:
    return f"shards/{shard}/proofs.json"


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class PurgeRecord:
    """A shard removed by the retention policy, and its final signed checkpoint (kept forever)."""

    shard: str
    purged_at: str
    checkpoint: str


@dataclass(frozen=True)
class ShardExport:
    """What the writer needs for one shard. The iterables are consumed once, in field order."""

    shard: str
    origin: str
    first_index: int
    entries: Iterable[bytes]
    checkpoints: Iterable[str] = ()
    frontier: Sequence[bytes] = ()
    """Hashes of the compact range [0, first_index): how a verifier recomputes roots of a partial range."""
    consistency: Iterable[ConsistencyProof] = ()
    leaf_hashes: Iterable[bytes] | None = None
    """The leaf hashes stored when the entries were sequenced, consumed in step with ``entries``; None
    computes them from the entries. Stored ones locate an entry altered after it was hashed."""


@dataclass(frozen=True)
class EntryFile:
    name: str
    leaf_hashes: str
    first_index: int
    count: int

    @property
    def end(self) -> int:
        return self.first_index + self.count


@dataclass(frozen=True)
class ShardManifest:
    shard: str
    origin: str
    first_index: int
    entry_count: int
    checkpoint_count: int

    @property
    def end(self) -> int:
        return self.first_index + self.entry_count

    def entry_files(self, per_file: int) -> list[EntryFile]:
        files = []
        start = self.first_index
        while start < self.end:
            stop = min(self.end, (start // per_file + 1) * per_file)
            files.append(EntryFile(entries_name(self.shard, start), leaf_hashes_name(self.shard, start),
                                   start, stop - start))
            start = stop
        return files

    def checkpoint_names(self) -> list[str]:
        return [checkpoint_name(self.shard, i) for i in range(self.checkpoint_count)]


@dataclass(frozen=True)
class Manifest:
    issuer: str
    since: datetime
    until: datetime
    generated_at: datetime
    entries_per_file: int
    shards: tuple[ShardManifest, ...]


@dataclass(frozen=True)
class ShardProofs:
    frontier: MerkleFrontier
    consistency: tuple[ConsistencyProof, ...]


def write_bundle(
    out: IO[bytes] | str | os.PathLike[str],
    *,
    issuer: str,
    since: datetime,
    until: datetime,
    generated_at: datetime,
    shards: Iterable[ShardExport],
    vkeys: Sequence[str],
    jwks: Mapping[str, Any] | None = None,
    purges: Iterable[PurgeRecord] = (),
    compresslevel: int = 1,
    entries_per_file: int = ENTRIES_PER_FILE,
) -> Manifest:
    """Stream a bundle to ``out`` (a path or a binary file object, seekable or not).

    Deflate level 1 by default: on audit entries it is ~12 % larger than level 6 but deflates twice and
    inflates a third faster, and inflating is the largest single cost of verification.
    """
    if entries_per_file < 1 or entries_per_file & (entries_per_file - 1):
        raise ValueError("entries_per_file must be a power of two")
    for moment in (since, until, generated_at):
        if moment.tzinfo is None:
            raise ValueError("bundle timestamps must be timezone-aware")
    stamp = generated_at.astimezone(UTC).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:

        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            # writestr knows the member's size up front, so it adds ZIP64 fields exactly when needed.
            zf.writestr(info, data, compresslevel=compresslevel)

        written = tuple(_write_shards(put, shards, entries_per_file))
        put(PURGES, b"".join(_purge_line(record) for record in purges))
        put(VKEYS, "".join(f"{vkey}\n" for vkey in vkeys).encode())
        put(JWKS, _json_bytes(jwks if jwks is not None else {"keys": []}))
        manifest = Manifest(issuer=issuer, since=since, until=until, generated_at=generated_at,
                            entries_per_file=entries_per_file, shards=written)
        # Last, because only now are the counts known; readers find it through the central directory.
        put(MANIFEST, _json_bytes(_manifest_json(manifest)))
    return manifest


def _write_shards(put: _Put, shards: Iterable[ShardExport], per_file: int) -> Iterator[ShardManifest]:
    previous = ""
    for export in shards:
        if not _SHARD.fullmatch(export.shard) or export.shard <= previous:
            raise ValueError(f"shards must be YYYY-MM names in increasing order, got {export.shard!r}")
        previous = export.shard
        frontier = MerkleFrontier.from_hashes(0, export.first_index, list(export.frontier))
        count = _write_entries(put, export.shard, export.first_index, export.entries, export.leaf_hashes,
                               per_file=per_file)
        notes = 0
        for note in export.checkpoints:
            put(checkpoint_name(export.shard, notes), note.encode())
            notes += 1
        proofs = {
            "frontier": [_b64(h) for h in frontier.hashes()],
            "consistency": [
                {"old_size": p.old_size, "new_size": p.new_size, "proof": [_b64(h) for h in p.hashes]}
                for p in export.consistency
            ],
        }
        put(proofs_name(export.shard), _json_bytes(proofs))
        yield ShardManifest(shard=export.shard, origin=export.origin, first_index=export.first_index,
                            entry_count=count, checkpoint_count=notes)


def _write_entries(put: _Put, shard: str, first_index: int, entries: Iterable[bytes],
                   stored: Iterable[bytes] | None, *, per_file: int) -> int:
    index = first_index
    batch: list[bytes] = []
    hashes: list[bytes] = []
    stored_hashes = iter(stored) if stored is not None else None

    def flush() -> None:
        start = index - len(batch)
        put(entries_name(shard, start), b"".join(entry + b"\n" for entry in batch))
        put(leaf_hashes_name(shard, start), b"".join(hashes) if stored_hashes is not None
            else b"".join(map(leaf_hash, batch)))
        batch.clear()
        hashes.clear()

    for entry in entries:
        if b"\n" in entry:
            raise FormatError(f"entry {index} of {shard} contains a newline; stored entries are JCS")
        batch.append(entry)
        if stored_hashes is not None:
            hashes.append(next(stored_hashes))
        index += 1
        if index % per_file == 0:
            flush()
    if batch:
        flush()
    return index - first_index


def _purge_line(record: PurgeRecord) -> bytes:
    body = {"shard": record.shard, "purged_at": record.purged_at, "checkpoint": record.checkpoint}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _manifest_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "issuer": manifest.issuer,
        "since": _rfc3339(manifest.since),
        "until": _rfc3339(manifest.until),
        "generated_at": _rfc3339(manifest.generated_at),
        "entries_per_file": manifest.entries_per_file,
        "shards": [
            {
                "shard": s.shard,
                "origin": s.origin,
                "first_index": s.first_index,
                # Redundant with the count, for people reading the manifest; readers check it.
                "last_index": s.end - 1 if s.entry_count else None,
                "entry_count": s.entry_count,
                "checkpoints": s.checkpoint_count,
            }
            for s in manifest.shards
        ],
    }


class BundleReader:
    """Read access to a bundle on disk. Every member is size-capped; malformed content raises FormatError."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self.zipfile = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise FormatError(f"{self.path} is not a readable ZIP archive: {exc}") from exc
        try:
            self.manifest = _parse_manifest(self.read_json(MANIFEST))
            _within(self.manifest, len(self.zipfile.infolist()))
        except FormatError:
            self.zipfile.close()
            raise

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.zipfile.close()

    def read(self, name: str, limit: int = MAX_SMALL_FILE_BYTES) -> bytes:
        return read_member(self.zipfile, name, limit)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
            raise FormatError(f"{name} is not valid JSON") from exc

    def has(self, name: str) -> bool:
        try:
            self.zipfile.getinfo(name)
        except KeyError:
            return False
        return True

    def first_line(self, name: str) -> bytes:
        """The first entry of an entries file, without reading the rest of it."""
        try:
            with self.zipfile.open(name) as member:
                line = member.readline(MAX_ENTRIES_FILE_BYTES)
        except KeyError as exc:
            raise FormatError(f"bundle has no {name}") from exc
        except (zipfile.BadZipFile, OSError) as exc:
            raise FormatError(f"cannot read {name}: {exc}") from exc
        return line.removesuffix(b"\n")

    def proofs(self, shard: ShardManifest) -> ShardProofs:
        raw = self.read_json(proofs_name(shard.shard))
        name = proofs_name(shard.shard)
        if not isinstance(raw, dict):
            raise FormatError(f"{name} is not an object")
        hashes = [_unb64(h, name) for h in _list(raw.get("frontier"), name)]
        frontier = MerkleFrontier.from_hashes(0, shard.first_index, hashes)
        proofs = []
        for item in _list(raw.get("consistency"), name):
            if not isinstance(item, dict):
                raise FormatError(f"{name}: a consistency proof is not an object")
            proofs.append(ConsistencyProof(
                old_size=_count(item.get("old_size"), name),
                new_size=_count(item.get("new_size"), name),
                hashes=tuple(_unb64(h, name) for h in _list(item.get("proof"), name)),
            ))
        return ShardProofs(frontier=frontier, consistency=tuple(proofs))

    def purges(self) -> list[PurgeRecord]:
        records = []
        for line in self.read(PURGES).splitlines():
            try:
                raw = json.loads(line)
            except ValueError as exc:
                raise FormatError(f"{PURGES} has a line that is not JSON") from exc
            if not isinstance(raw, dict) or not all(
                isinstance(raw.get(k), str) for k in ("shard", "purged_at", "checkpoint")
            ):
                raise FormatError(f"{PURGES}: a record needs string shard, purged_at and checkpoint")
            records.append(PurgeRecord(shard=raw["shard"], purged_at=raw["purged_at"], checkpoint=raw["checkpoint"]))
        return records

    def vkeys(self) -> list[str]:
        try:
            text = self.read(VKEYS).decode()
        except UnicodeDecodeError as exc:
            raise FormatError(f"{VKEYS} is not UTF-8") from exc
        return [line for line in text.splitlines() if line]


def read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        with zf.open(name) as member:
            data = member.read(limit + 1)
    except KeyError as exc:
        raise FormatError(f"bundle has no {name}") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FormatError(f"cannot read {name}: {exc}") from exc
    if len(data) > limit:
        raise FormatError(f"{name} is larger than {limit} bytes")
    return data


def _parse_manifest(raw: Any) -> Manifest:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise FormatError(f"{MANIFEST} does not describe a {FORMAT}")
    if raw.get("version") != VERSION:
        raise FormatError(f"unsupported bundle version {raw.get('version')!r}")
    per_file = _count(raw.get("entries_per_file"), MANIFEST)
    if per_file == 0:
        raise FormatError(f"{MANIFEST}: entries_per_file must be positive")
    shards = tuple(_parse_shard(item) for item in _list(raw.get("shards"), MANIFEST))
    names = [s.shard for s in shards]
    if names != sorted(set(names)):
        raise FormatError(f"{MANIFEST}: shards must be listed once each, in order")
    issuer = raw.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise FormatError(f"{MANIFEST}: issuer missing")
    since, until = _time(raw.get("since")), _time(raw.get("until"))
    if until <= since:
        # The exporter never writes such a range; read as one, it would excuse every month as outside it.
        raise FormatError(f"{MANIFEST}: until is not after since")
    return Manifest(issuer=issuer, since=since, until=until,
                    generated_at=_time(raw.get("generated_at")), entries_per_file=per_file, shards=shards)


def _within(manifest: Manifest, members: int) -> None:
    """Refuse counts the archive cannot hold before anything is listed from them: a forged manifest must
    not make the verifier enumerate a billion checkpoint or entry file names."""
    for shard in manifest.shards:
        files = -(-shard.entry_count // manifest.entries_per_file) + 1  # a run may straddle one more cut
        if shard.checkpoint_count > members or files > members + 1:
            raise FormatError(f"{MANIFEST}: {shard.shard} claims more files than the bundle holds")


def _parse_shard(raw: Any) -> ShardManifest:
    if not isinstance(raw, dict):
        raise FormatError(f"{MANIFEST}: a shard is not an object")
    shard, origin = raw.get("shard"), raw.get("origin")
    if not isinstance(shard, str) or not _SHARD.fullmatch(shard) or not isinstance(origin, str):
        raise FormatError(f"{MANIFEST}: bad shard name or origin in {raw!r}")
    parsed = ShardManifest(shard=shard, origin=origin, first_index=_count(raw.get("first_index"), MANIFEST),
                           entry_count=_count(raw.get("entry_count"), MANIFEST),
                           checkpoint_count=_count(raw.get("checkpoints"), MANIFEST))
    expected_last = parsed.end - 1 if parsed.entry_count else None
    if raw.get("last_index") != expected_last:
        raise FormatError(f"{MANIFEST}: last_index of {shard} disagrees with first_index and entry_count")
    return parsed


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise FormatError(f"{MANIFEST}: a timestamp is missing")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FormatError(f"{MANIFEST}: {value!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise FormatError(f"{MANIFEST}: {value!r} has no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # an offset that moves it out of years 1 to 9999
        raise FormatError(f"{MANIFEST}: {value!r} is out of range") from exc


def _count(value: Any, where: str) -> int:
    # bool is an int subclass; a JSON true is not a count.
    if type(value) is not int or value < 0:
        raise FormatError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected a list")
    return value


def _unb64(value: Any, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{where}: bad base64 hash") from exc
    if len(raw) != HASH_SIZE:
        raise FormatError(f"{where}: a hash must be {HASH_SIZE} bytes")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
