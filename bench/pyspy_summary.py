"""Where a gateway worker's request threads spend their time, from ``py-spy record --threads --format raw``.

    python bench/pyspy_summary.py PROFILE.txt [PROFILE.txt ...] [--top 20]

(``bench/decisions.py --py-spy DIR`` writes one file per worker.) Only gunicorn's request threads are
counted; samples where a thread waits for a connection to serve are left out, so the shares are of the
time the threads spend on requests. With ``--idle`` profiles (the default of the benches) that is wall
time: waiting for a lock, the database or the GIL is counted where it happens. Stages are inclusive
(a frame anywhere on the stack) and nest (indented); the second table is the innermost frames.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (label, any of these substrings in the stack), in the order a decision meets them.
STAGES = [
    ("Flask app (everything inside the WSGI call)", ["Flask.__call__"]),
    ("  authenticate (authlib, token read)", ["authenticate (gateway/auth/oauth.py"]),
    ("  parse_body (JSON, pydantic)", ["parse_body"]),
    ("  make_decision", ["make_decision"]),
    ("    read the facts (consents + algorithm)", ["_read_facts"]),
    ("    sign the ticket", ["_sign_ticket"]),
    ("    build the audit entry", ["_built_ahead"]),
    ("    take the use (conditional UPDATE)", ["_take_uses"]),
    ("    insert the decision and its queue row", ["_insert_allowed"]),
    ("  commit (before the answer is rendered)", ["commit_early (gateway/core/boundary.py"]),
    ("  after_request: commit", ["_commit (gateway/core/boundary.py"]),
    ("  after_request: metrics, access log", ["_finish (gateway/core/observability.py"]),
    ("waiting for SQLite's write lock (writer queue, BEGIN IMMEDIATE)", ["_SQLiteConnection.begin"]),
    ("waiting for PostgreSQL (round trips, commits)", ["Connection.wait (psycopg", "wait_conn", "wait_c ("]),
    ("in the database driver (sqlite3 / psycopg calls)", ["do_execute (sqlalchemy", "do_commit (sqlalchemy"]),
]
IDLE = "_worker (concurrent/futures/thread.py:81)"  # a pool thread waiting for the next connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    innermost = Counter[str]()
    inclusive = Counter[str]()
    busy = idle = 0
    ticker = Counter[str]()
    for path in args.profiles:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            count = int(count_text)
            frames = stack.split(";")
            if "audit-ticker" in frames[0]:
                ticker["sequencing" if "drain" in stack or "tick (" in stack else "waiting"] += count
                continue
            if "ThreadPoolExecutor" not in frames[0]:
                continue
            if frames[-1] == IDLE:
                idle += count
                continue
            busy += count
            innermost[frames[-1]] += count
            for label, patterns in STAGES:
                if any(p in stack for p in patterns):
                    inclusive[label] += count
    print(f"request-thread samples: {busy} on requests, {idle} waiting for a connection")
    print()
    print("| share | where (inclusive) |")
    print("|---|---|")
    app = inclusive[STAGES[0][0]]
    print(f"| {100 * (busy - app) / max(1, busy):.1f} % | gunicorn: reading the request, writing the answer |")
    for label, _ in STAGES:
        print(f"| {100 * inclusive[label] / max(1, busy):.1f} % | {label} |")
    print()
    print("| share | innermost frame |")
    print("|---|---|")
    for frame, count in innermost.most_common(args.top):
        print(f"| {100 * count / max(1, busy):.1f} % | `{frame}` |")
    total = sum(ticker.values())
    print()
    print(f"audit ticker: sequencing in {100 * ticker['sequencing'] / max(1, total):.1f} % of its samples")


if __name__ == "__main__":
    main()
