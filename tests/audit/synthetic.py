"""Synthetic audit logs with real keys and real signatures, built the way the sequencer builds them, and
written to bundles with the real writer. Tests tamper with the result."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.bundle import (
    ConsistencyProof,
    PurgeRecord,
    ShardExport,
    shard_origin,
    write_bundle,
)
from audit.rfc9162 import MerkleFrontier, consistency_proof, leaf_hash, subtree_hasher
from audit.signed_note import format_checkpoint, sign_note, vkey_for

ISSUER = "https://gateway.test"
KEY_NAME = "gateway.test/audit"


class Signer:
    def __init__(self, name: str = KEY_NAME) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.vkey = vkey_for(name, self.public)

    def checkpoint(self, origin: str, size: int, root: bytes) -> str:
        return sign_note(format_checkpoint(origin, size, root), self.name, self.key.sign, self.public)


@dataclass
class Shard:
    name: str
    entries: list[bytes]
    checkpoints: dict[int, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return shard_origin(ISSUER, self.name)

    @property
    def leaf_hashes(self) -> list[bytes]:
        return [leaf_hash(e) for e in self.entries]

    def final(self) -> str:
        return self.checkpoints[len(self.entries)]


def decision(seq: int) -> dict[str, Any]:
    return {"action": "decision.allowed", "actor": {"type": "client", "id": "cli_app"},
            "subject": f"sub_{seq:06d}", "media": {"source": hashlib.sha256(b"%d" % seq).hexdigest()}}


def entry(shard: str, seq: int, body: Mapping[str, Any]) -> bytes:
    return bytes(rfc8785.dumps({**body, "ts": f"{shard}-02T10:00:00.000000Z", "seq": seq, "shard": shard}))


def make_log(signer: Signer, sizes: Mapping[str, int], *, checkpoint_every: int = 10,
             previous: Shard | None = None) -> dict[str, Shard]:
    """Consecutive shards; entry 0 of each commits to the previous shard's final checkpoint."""
    shards: dict[str, Shard] = {}
    for name, size in sizes.items():
        link = None
        if previous is not None:
            link = {"origin": previous.origin, "size": len(previous.entries),
                    "root": base64.b64encode(MerkleFrontier.of_leaves(0, previous.leaf_hashes).root()).decode(),
                    "note": previous.final()}
        opened = {"action": "shard.opened", "actor": {"type": "system", "id": "sequencer"}, "previous": link}
        shard = Shard(name, [entry(name, 0, opened), *(entry(name, seq, decision(seq)) for seq in range(1, size))])
        sign_every(signer, shard, checkpoint_every)
        shards[name] = previous = shard
    return shards


def sign_every(signer: Signer, shard: Shard, every: int) -> None:
    frontier = MerkleFrontier()
    shard.checkpoints = {}
    for size, leaf in enumerate(shard.leaf_hashes, 1):
        frontier.append(leaf)
        if size % every == 0 or size == len(shard.entries):
            shard.checkpoints[size] = signer.checkpoint(shard.origin, size, frontier.root())


@dataclass(frozen=True)
class Export:
    """How one shard goes into a bundle: from which index, with which checkpoints and proofs."""

    shard: Shard
    first_index: int = 0
    end: int | None = None
    proofs_from: tuple[int, ...] = ()


def to_shard_export(export: Export) -> ShardExport:
    shard, first = export.shard, export.first_index
    end = len(shard.entries) if export.end is None else export.end
    leaves = shard.leaf_hashes
    # The checkpoints the range needs: those inside it, and the next one after it (linked by a proof).
    inside = [s for s in shard.checkpoints if first <= s <= end]
    after = [s for s in sorted(shard.checkpoints) if s > end][:1]
    proofs = [ConsistencyProof(end, s, tuple(consistency_proof(end, s, subtree_hasher(leaves)))) for s in after]
    proofs += [ConsistencyProof(old, min(inside), tuple(consistency_proof(old, min(inside), subtree_hasher(leaves))))
               for old in export.proofs_from]
    return ShardExport(
        shard=shard.name, origin=shard.origin, first_index=first, entries=iter(shard.entries[first:end]),
        checkpoints=[shard.checkpoints[s] for s in sorted(inside + after)],
        frontier=MerkleFrontier.of_leaves(0, leaves[:first]).hashes(), consistency=proofs,
    )


def write(path: Path, exports: list[Export], *, vkeys: list[str], since: str, until: str,
          purges: tuple[PurgeRecord, ...] = (), entries_per_file: int = 8,
          generated_at: str = "2025-06-01T00:00:00+00:00") -> Path:
    write_bundle(path, issuer=ISSUER, since=_time(since), until=_time(until), generated_at=_time(generated_at),
                 shards=[to_shard_export(e) for e in exports], vkeys=vkeys, jwks={"keys": []}, purges=purges,
                 entries_per_file=entries_per_file)
    return path


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def rewrite(source: Path, target: Path, changes: Mapping[str, bytes | None]) -> Path:
    """Copy a bundle, replacing (bytes) or dropping (None) members: what an attacker with the file can do."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename in changes:
                continue
            new.writestr(info, old.read(info.filename))
        for name, data in changes.items():
            if data is not None:
                new.writestr(name, data)
    return target


def manifest_with(bundle: Path, **shard_changes: dict[str, Any]) -> bytes:
    """The bundle's manifest with some shards' fields changed (or a shard dropped, given {})."""
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    shards = []
    for shard in manifest["shards"]:
        change = shard_changes.get(shard["shard"].replace("-", "_"))
        if change == {}:
            continue
        shards.append({**shard, **(change or {})})
    return json.dumps({**manifest, "shards": shards}).encode()
