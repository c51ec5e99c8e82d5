"""Time of one RFC 9162 proof served from the stored tree, at 1,000, 100,000 and 1,000,000 entries a shard.

    python bench/audit_proofs.py [--backends sqlite,postgresql] [--pg URL] [--sizes 1000,100000,1000000]
                                 [--proofs N] [--baseline N]

For each backend and size, one throw-away database gets one shard of that many entries through the fast
path of ``tests/gateway/auditing/synthetic_shard.py`` (the sequencer's own node code, small stand-in bodies), then
--proofs inclusion and --proofs consistency proofs at random positions against the full tree are served as a
request would: a fresh session each, ``audit.proofs.inclusion`` / ``consistency``. Reported: median and p99
milliseconds per proof, SQL statements and rows per proof. Every proof is verified against the tree's root.
--baseline N also times N inclusion proofs the way they were served before the nodes were stored (every leaf
hash of each subtree read from ``audit_entries``). Target: <= 5 ms per proof, flat in the size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audit_db import DEFAULT_PG, machine, make_app, percentile, temp_database
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import proofs, rfc9162, tree
from audit.models import Entry
from gateway.core.db import db
from tests.gateway.auditing.synthetic_shard import body, counting_reads, write_shard

SHARD = "2026-05"


def _old_inclusion(session: Session, index: int, size: int) -> list[bytes]:
    """How a proof was served before audit_nodes: each subtree hash from all of its leaf hashes."""

    def subtree_hash(start: int, end: int) -> bytes:
        return rfc9162.root(list(session.scalars(
            select(Entry.leaf_hash).where(Entry.shard == SHARD, Entry.seq >= start, Entry.seq < end)
            .order_by(Entry.seq))))

    return rfc9162.inclusion_proof(index, size, subtree_hash)


def _timed(app: object, prove: Callable[[Session], list[bytes]]) -> tuple[float, int, int, list[bytes]]:
    with app.app_context():  # type: ignore[attr-defined]
        session = db.read_session()
        try:
            with counting_reads(session) as reads:
                started = time.perf_counter()
                path = prove(session)
                elapsed = time.perf_counter() - started
        finally:
            session.close()
    return elapsed, reads.statements, reads.rows, path


def run(backend: str, pg: str, size: int, count: int, baseline: int) -> None:
    with temp_database(backend, pg) as url:
        app = make_app(url)
        started = time.perf_counter()
        with app.app_context(), db.unit_of_work() as session:
            frontier = write_shard(session, SHARD, size)
        setup = time.perf_counter() - started
        root = frontier.root()
        rng = random.Random(size)
        samples: dict[str, list[tuple[float, int, int]]] = {"inclusion": [], "consistency": []}
        for _ in range(count):
            index = rng.randrange(size)
            seconds, statements, rows, path = _timed(app, lambda s, i=index: proofs.inclusion(s, SHARD, i, size))
            rfc9162.verify_inclusion(index, size, rfc9162.leaf_hash(body(SHARD, index)), path, root)
            samples["inclusion"].append((seconds, statements, rows))
            old = rng.randrange(1, size)
            seconds, statements, rows, path = _timed(app, lambda s, o=old: proofs.consistency(s, SHARD, o, size))
            with app.app_context():
                old_root = tree.frontier_at(db.session, SHARD, old).root()
            rfc9162.verify_consistency(old, size, path, old_root, root)
            samples["consistency"].append((seconds, statements, rows))
        print(f"{backend:10} {size:>9,} entries (written in {setup:5.1f} s)")
        for kind, values in samples.items():
            ms = [v[0] * 1000 for v in values]
            print(f"    {kind:11} median {statistics.median(ms):6.2f} ms  p99 {percentile(ms, 99):6.2f} ms  "
                  f"max {max(ms):6.2f} ms  statements {max(v[1] for v in values)}  "
                  f"rows {min(v[2] for v in values)}-{max(v[2] for v in values)}")
        if baseline:
            ms, rows = [], []
            for _ in range(baseline):
                index = rng.randrange(size)
                seconds, _, read, path = _timed(app, lambda s, i=index: _old_inclusion(s, i, size))
                rfc9162.verify_inclusion(index, size, rfc9162.leaf_hash(body(SHARD, index)), path, root)
                ms.append(seconds * 1000)
                rows.append(read)
            print(f"    {'before':11} median {statistics.median(ms):6.2f} ms  (every leaf hash: {max(rows):,} rows)")
        with app.app_context():
            db.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of a loopback PostgreSQL server")
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--proofs", type=int, default=200, help="proofs of each kind per size")
    parser.add_argument("--baseline", type=int, default=3, help="proofs served the old way per size (0: none)")
    args = parser.parse_args()
    print(machine())
    for backend in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            run(backend, args.pg, size, args.proofs, args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
