"""Runs the audit sequencer: soon after any commit that queued entries, and on a background tick.

Integration soon after commit keeps the lag short without holding any lock while the request ran:
inline after the commit in a CLI command or a test, and under ``serve`` on the ticker thread, which a
commit wakes and which drains at most every ``AUDIT_BATCH_SECONDS`` (batches: under load a drain per
commit cost more than the requests). The tick catches whatever a crashed or lock-losing process left
queued, signs time-based checkpoints and closes months with no traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from audit import sequencer, signed_note
from audit.models import QueuedEntry
from gateway.auditing import witnesses
from gateway.core.clock import utcnow
from gateway.core.config import ConfigError
from gateway.core.db import db
from gateway.keys.keyring import key_store
from gateway.keys.store import KeyStoreError, Signer

log = logging.getLogger(__name__)

_DIRTY = "audit_queued"
_DUE = "audit_drain_due"
_WAKE = "consent_gateway.audit_wake"


def key_name(issuer: str) -> str:
    """The signed-note key name: one per log (see docs/AUDIT_BUNDLE.md), not one per month."""
    return issuer.split("://", 1)[-1].rstrip("/") + "/audit"


def verifier_keys(session: Session, issuer: str) -> list[str]:
    """Signed-note verifier keys of every signing key, retired ones included (old checkpoints)."""
    return [signed_note.vkey_for(key_name(issuer), row.public_key) for row in key_store().all(session)]


class _ActiveKey:
    """The active signing key as the sequencer's NoteSigner, read and decrypted only if it signs.

    Most batches sign nothing (checkpoints come every N entries or T seconds) and a process that loses
    the race for the lead signs nothing at all; loading the key up front cost a query and a decryption
    on nearly every commit.
    """

    def __init__(self, session: Session, issuer: str) -> None:
        self.name = key_name(issuer)
        self._session = session
        self._issuer = issuer
        self._signer: Signer | None = None

    def _key(self) -> Signer:
        if self._signer is None:
            self._signer = key_store().signer(self._session, self._issuer)
        return self._signer

    @property
    def kid(self) -> str:
        return self._key().kid

    @property
    def public_key(self) -> bytes:
        return self._key().public_key_bytes

    def sign(self, data: bytes) -> bytes:
        return self._key().sign(data)


def note_signer(session: Session, issuer: str) -> sequencer.NoteSigner:
    return _ActiveKey(session, issuer)


def policy(app: Flask) -> sequencer.Policy:
    return sequencer.Policy(checkpoint_every=int(app.config["AUDIT_CHECKPOINT_EVERY"]),
                            checkpoint_seconds=int(app.config["AUDIT_CHECKPOINT_SECONDS"]))


def drain(app: Flask, now: datetime | None = None, max_batches: int = 20) -> int:
    """Integrate what is queued (up to ``max_batches`` batches); returns the number of entries."""
    total = 0
    issuer = app.config["ISSUER"]
    for _ in range(max_batches):
        with db.unit_of_work() as session:
            moment = now or utcnow()
            done = sequencer.integrate(session, note_signer(session, issuer), issuer, moment, policy(app))
        total += done
        if done < policy(app).batch:
            break
    return total


def seal(app: Flask, now: datetime | None = None) -> None:
    """Integrate everything queued and sign a checkpoint at the current size (before an export)."""
    moment = now or utcnow()
    drain(app, moment, max_batches=1_000_000)
    issuer = app.config["ISSUER"]
    with db.unit_of_work() as session:
        sequencer.checkpoint_now(session, note_signer(session, issuer), moment)


def tick(app: Flask, now: datetime | None = None) -> None:
    """Periodic work: leftovers, month closing, time-based checkpoints."""
    moment = now or utcnow()
    drain(app, moment)
    issuer = app.config["ISSUER"]
    with db.unit_of_work() as session:
        signer = note_signer(session, issuer)
        sequencer.close_months(session, signer, issuer, moment)
    with db.unit_of_work() as session:
        shard = sequencer.open_shard(session)
        if shard is not None and sequencer.checkpoint_due(shard, moment, policy(app)):
            sequencer.checkpoint_now(session, note_signer(session, issuer), moment)


def _mark_dirty(session: Session, _context: Any, _instances: Any) -> None:
    if any(isinstance(obj, QueuedEntry) for obj in session.new):
        queued(session)


def queued(session: Session) -> None:
    """Note that ``session`` queued audit entries, so that its commit wakes the sequencer.

    Entries added as ORM objects are noticed at flush; a writer that inserts queue rows itself (with
    a Core statement) says so here.
    """
    session.info[_DIRTY] = True


def _after_commit(session: Session) -> None:
    # Only note it here: the committing session still holds its connection, and draining now would
    # need a second one per request (a pool deadlock under load). The drain happens once the
    # transaction has ended and the connection is back in the pool.
    if session.info.pop(_DIRTY, False):
        session.info[_DUE] = True


def _sequencer_for(app: Flask) -> Callable[[Session, SessionTransaction], None]:
    def after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None or not session.info.pop(_DUE, False):
            return
        wake = app.extensions.get(_WAKE)
        if wake is not None:
            # Serving: the ticker thread integrates in batches, off the request's path.
            wake.set()
            return
        try:
            with app.app_context():
                drain(app)
        except (SQLAlchemyError, KeyStoreError):
            # The entries are durably queued; integration is retried by the next commit or the tick.
            log.warning("audit sequencing deferred", exc_info=True)

    return after_transaction_end


def init_app(app: Flask) -> None:
    # Only the gateway's own sessions: a session someone else opens in this process (a test's, a tool's)
    # is none of the sequencer's business.
    factory = db.session_factory(app)
    event.listen(factory, "before_flush", _mark_dirty)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_transaction_end", _sequencer_for(app))
    try:
        witnesses.configured(app)  # a typo in AUDIT_WITNESSES stops every command, not only `serve`'s workers
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if app.config.get("AUDIT_BACKGROUND", False):
        _start_ticker(app)
        # A thread of its own: a slow witness must not hold up the ticker's sequencing.
        witnesses.start(app)


# A woken ticker drains at most this often. Under load every commit wakes it, and a drain has a fixed
# cost of a few milliseconds (its own write transaction: on SQLite the write lock) besides ~0.05 ms per
# entry: drained after every commit, sequencing cost more than the decisions themselves. Batched, one
# drain integrates what a quarter of a second of requests queued. Adds at most this much to the
# integration lag (the target is a p99 under one second).
AUDIT_BATCH_SECONDS = 0.25


def _start_ticker(app: Flask) -> None:
    """Integrate soon after commits (woken, at most every AUDIT_BATCH_SECONDS) and every AUDIT_TICK_SECONDS."""
    interval = float(app.config.get("AUDIT_TICK_SECONDS", 1.0))
    batch = float(app.config.get("AUDIT_BATCH_SECONDS", AUDIT_BATCH_SECONDS))
    wake = threading.Event()
    app.extensions[_WAKE] = wake

    def run() -> None:
        last_tick = last_drain = 0.0
        while True:
            woken = wake.wait(interval)
            if woken:
                # Let the commits of the next few milliseconds join this drain.
                time.sleep(max(0.0, last_drain + batch - time.monotonic()))
            wake.clear()
            with app.app_context():
                try:
                    if woken:
                        last_drain = time.monotonic()
                        drain(app)
                    if time.monotonic() - last_tick >= interval:
                        tick(app)
                        last_tick = time.monotonic()
                except Exception:  # the ticker must survive a database restart
                    log.warning("audit tick failed", exc_info=True)

    threading.Thread(target=run, name="audit-ticker", daemon=True).start()
