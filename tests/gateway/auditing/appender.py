"""A gateway process for the crash and concurrency tests: ``python -m tests.gateway.auditing.appender MODE …``.

It builds the real app from the ``CONSENT_GATEWAY_*`` environment (the same way a gunicorn worker
does), prints ``ready``, waits for a line on stdin (so that several children start their load at the
same moment), then prints one line per committed transaction, flushed, *after* ``commit()`` has
returned. A line on stdout is therefore proof that the transaction committed; the parent test reads
the lines to know what must survive a SIGKILL, and never has to guess from timing.

Modes:
  append TAG COUNT NOW     COUNT small transactions of 1 to 3 entries each, through ``audit_trail.record``
                           (the after-commit hook sequences them, so a kill can land in the sequencer
                           too); prints ``TAG-i`` for every committed entry.
  sequence BATCH NOW       integrate what is queued, BATCH entries per transaction, until nothing is
                           left; prints the number integrated by each committed batch, then ``done``.
"""

from __future__ import annotations

import sys
from datetime import datetime

from audit import sequencer
from gateway import create_app
from gateway.auditing.runner import note_signer, policy
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.core.db import db


def _ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()


def _append(tag: str, count: int, now: datetime) -> None:
    app = create_app()
    _ready()
    i = 0
    while i < count:
        # Vary the transaction size so that a kill can fall between entries of one transaction.
        size = min(1 + i % 3, count - i)
        markers = [f"{tag}-{i + k}" for k in range(size)]
        with app.app_context(), db.unit_of_work() as session:
            for marker in markers:
                AuditJournal(session, now).record("test.crash", SYSTEM, detail={"marker": marker})
        sys.stdout.write("".join(f"{m}\n" for m in markers))
        sys.stdout.flush()
        i += size


def _sequence(batch: int, now: datetime) -> None:
    app = create_app()
    issuer = app.config["ISSUER"]
    rules = sequencer.Policy(checkpoint_every=policy(app).checkpoint_every,
                             checkpoint_seconds=policy(app).checkpoint_seconds, batch=batch)
    _ready()
    with app.app_context():
        while True:
            with db.unit_of_work() as session:
                done = sequencer.integrate(session, note_signer(session, issuer), issuer, now, rules)
            sys.stdout.write(f"{done}\n")
            sys.stdout.flush()
            if done == 0:
                break
    sys.stdout.write("done\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    mode, *rest = argv
    if mode == "append":
        tag, count, now = rest
        _append(tag, int(count), datetime.fromisoformat(now))
    elif mode == "sequence":
        batch, now = rest
        _sequence(int(batch), datetime.fromisoformat(now))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
