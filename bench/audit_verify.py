"""Offline verification speed on a one-million-entry shard, beside the machine's SHA-256 limit.

    python bench/audit_verify.py [--entries N] [--checkpoint-every N] [--keep DIR]

Builds a single-shard bundle with the real writer (realistic ~450-byte JCS entries, a signed checkpoint
every 1000 entries, as the sequencer's default policy), then times ``audit.verify.verify_bundle`` with all
CPUs and with one, and the plain hashlib cost of the leaf hashes of the same lines. Target: >= 500,000
entries/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audit.bundle import BundleReader, ShardExport, shard_origin, write_bundle
from audit.rfc9162 import MerkleFrontier, leaf_hash
from audit.signed_note import format_checkpoint, sign_note, vkey_for
from audit.verify import verify_bundle

ISSUER = "https://gateway.example"
SHARD = "2025-01"
NAME = "gateway.example/audit"

# The members of a decision entry in JCS order, filled per entry; checked against rfc8785 below.
TEMPLATE = (
    '{{"action":"decision.allowed","actor":{{"id":"cli_{client}","type":"client"}},'
    '"algorithm":"110100000000000{algo}","client_id":"cli_{client}","consent_id":"cns_{consent}",'
    '"decision_id":"dec_{decision}","media":{{"source":"{digest}"}},"operation":"face_swap",'
    '"outcome":"allow","request_id":"req_{decision}","seq":{seq},"shard":"{shard}",'
    '"subject":"sub_{consent}","ts":"2025-01-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"}}'
)


def entry(seq: int) -> bytes:
    digest = hashlib.sha256(seq.to_bytes(8, "big")).hexdigest()
    return TEMPLATE.format(
        client=digest[:10], algo=seq % 10, consent=digest[10:26], decision=digest[26:42], digest=digest, seq=seq,
        shard=SHARD, day=1 + seq // 40000, hour=seq // 1700 % 24, minute=seq // 30 % 60, second=seq % 60,
        micro=seq % 999983,
    ).encode()


def build(path: Path, entries: int, every: int) -> tuple[float, str]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    origin = shard_origin(ISSUER, SHARD)
    notes: list[str] = []

    def stream() -> Iterator[bytes]:
        # Checkpoints are signed while the entries stream, as the sequencer does while integrating.
        frontier = MerkleFrontier()
        for seq in range(entries):
            data = entry(seq)
            frontier.append(leaf_hash(data))
            if frontier.size % every == 0 or frontier.size == entries:
                body = format_checkpoint(origin, frontier.size, frontier.root())
                notes.append(sign_note(body, NAME, key.sign, public))
            yield data

    started = time.perf_counter()
    write_bundle(path, issuer=ISSUER, since=datetime(2025, 1, 1, tzinfo=UTC),
                 until=datetime(2025, 2, 1, tzinfo=UTC), generated_at=datetime(2025, 2, 1, tzinfo=UTC),
                 shards=[ShardExport(shard=SHARD, origin=origin, first_index=0, entries=stream(), checkpoints=notes)],
                 vkeys=[vkey_for(NAME, public)])
    return time.perf_counter() - started, vkey_for(NAME, public)


def hashing_limit(path: Path) -> tuple[float, float, int]:
    """Seconds for SHA-256(0x00 || line) of every line, one core; seconds for one SHA-256 over all bytes."""
    per_line = bulk = 0.0
    total = 0
    with BundleReader(path) as reader:
        shard = reader.manifest.shards[0]
        for file in shard.entry_files(reader.manifest.entries_per_file):
            data = reader.read(file.name, 1 << 30)
            lines = data.split(b"\n")[:-1]
            total += len(data)
            started = time.perf_counter()
            for line in lines:
                hashlib.sha256(b"\x00" + line).digest()
            per_line += time.perf_counter() - started
            started = time.perf_counter()
            hashlib.sha256(data).digest()
            bulk += time.perf_counter() - started
    return per_line, bulk, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="write the bundle here instead of a temporary directory")
    args = parser.parse_args()
    sample = entry(12345)
    if rfc8785.dumps(__import__("json").loads(sample)) != sample:
        raise SystemExit("benchmark entries are not canonical JCS")

    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "bench-bundle.zip"
        write_seconds, vkey = build(path, args.entries, args.checkpoint_every)
        size = path.stat().st_size
        print(f"bundle: {args.entries:,} entries of ~{len(sample)} bytes, {size / 1e6:,.1f} MB, written in "
              f"{write_seconds:.1f} s ({args.entries / write_seconds:,.0f} entries/s), "
              f"writer process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")

        cpus = os.cpu_count() or 1
        results = {}
        for jobs in (cpus, 1):
            report = verify_bundle(path, keys=[vkey], jobs=jobs)
            if not report.ok:
                raise SystemExit(report.render())
            results[jobs] = report.entries / report.seconds
            print(f"verify, {jobs} worker process{'es' if jobs > 1 else ''}: {report.seconds:.2f} s, "
                  f"{results[jobs]:,.0f} entries/s")

        per_line, bulk, total = hashing_limit(path)
        limit = args.entries / per_line
        print(f"SHA-256 limit, same lines, one core: leaf hashes {limit:,.0f} entries/s; "
              f"bulk {total / bulk / 1e6:,.0f} MB/s = {args.entries / bulk:,.0f} entries/s")
        print(f"ratio verify ({cpus} CPUs) / one-core leaf hashing: {results[cpus] / limit:.2f}; "
              f"verify (1 CPU) / one-core leaf hashing: {results[1] / limit:.2f}")
        print(f"target 500,000 entries/s: {'met' if results[cpus] >= 500_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
