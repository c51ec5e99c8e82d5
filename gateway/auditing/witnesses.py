"""Witness cosignatures for the log's checkpoints, collected off every request's and the sequencer's path.

``AUDIT_WITNESSES`` lists the witnesses, each ``{"url": <submission prefix>, "vkey": <cosigner vkey>}`` (or
the string ``"<url> <vkey>"``); ``CONSENT_GATEWAY_AUDIT_WITNESSES`` takes the same as JSON. In a serving
process a thread of its own submits, every ``AUDIT_WITNESS_SECONDS`` (5), the newest checkpoint of each
recent month that a witness has not cosigned, with the consistency proof from the last size it cosigned
(``audit.witness``). No database transaction is open while a witness is asked, and each request gives up
after ``AUDIT_WITNESS_TIMEOUT`` (5 s): a slow or dead witness delays nothing but its own cosignatures, and
the first failure ends that witness's turn until the next pass. A ``409 Conflict`` (the witness last
cosigned another size: our record was lost, or another gateway process was quicker) is answered once more
with a proof from the size it names. An export asks the witnesses once before it is written, so that the
checkpoint it has just sealed can carry their cosignatures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime

import httpx
from flask import Flask

from audit import witness as audit_witness
from audit.errors import AuditError
from gateway.core.clock import utcnow
from gateway.core.db import db

log = logging.getLogger(__name__)

_THREAD = "consent_gateway.audit_witnesses"
_SIZE_TYPE = "text/x.tlog.size"


def configured(app: Flask) -> list[audit_witness.Witness]:
    """The witnesses of ``AUDIT_WITNESSES``; a malformed entry is an error at start, not a silent skip."""
    found = []
    for item in app.config.get("AUDIT_WITNESSES") or ():
        if isinstance(item, Mapping):
            url, vkey = item.get("url"), item.get("vkey")
        else:
            url, _, vkey = str(item).partition(" ")
        if not isinstance(url, str) or not isinstance(vkey, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"AUDIT_WITNESSES: need a URL and a cosigner vkey, got {item!r}")
        witness = audit_witness.Witness(url=url, vkey=vkey.strip())
        witness.cosigner  # noqa: B018 - parses the vkey now, so a typo fails at start
        found.append(witness)
    return found


def collect(app: Flask, now: datetime | None = None) -> int:
    """One pass over every configured witness; returns how many cosignatures were stored."""
    witnesses = configured(app)
    if not witnesses:
        return 0
    stored = 0
    timeout = float(app.config.get("AUDIT_WITNESS_TIMEOUT", 5.0))
    with httpx.Client(timeout=timeout) as client:
        for witness in witnesses:
            stored += _collect_from(app, client, witness, now)
    return stored


def _collect_from(app: Flask, client: httpx.Client, witness: audit_witness.Witness, now: datetime | None) -> int:
    with app.app_context():
        session = db.read_session()
        try:
            pending = audit_witness.pending(session, witness)
        finally:
            session.close()
    stored = 0
    for submission in pending:
        try:
            answer, submitted = _add_checkpoint(app, client, witness, submission)
            with app.app_context(), db.unit_of_work() as session:
                audit_witness.record(session, witness, submitted, answer, now or utcnow())
        except (httpx.HTTPError, AuditError) as exc:
            # Its turn ends here: a witness that is down would only cost one timeout per shard.
            log.warning("witness %s: %s (shard %s, size %d)", witness.id, exc, submission.shard, submission.size)
            return stored
        stored += 1
    return stored


def _add_checkpoint(app: Flask, client: httpx.Client, witness: audit_witness.Witness,
                    submission: audit_witness.Submission) -> tuple[str, audit_witness.Submission]:
    response = _post(client, witness, submission)
    if response.status_code == 409 and response.headers.get("content-type", "").startswith(_SIZE_TYPE):
        size = audit_witness.parse_size(response.text)
        if size > submission.size:
            raise audit_witness.WitnessRefused(f"it has cosigned size {size}, beyond our newest ({submission.size}); "
                                               "the next pass submits the newer checkpoint")
        with app.app_context():
            session = db.read_session()
            try:
                submission = audit_witness.submission(session, submission.shard, submission.size, size)
            finally:
                session.close()
        response = _post(client, witness, submission)
    if response.status_code != 200:
        raise audit_witness.WitnessRefused(f"add-checkpoint answered {response.status_code}: {response.text[:200]!r}")
    return response.text, submission


def _post(client: httpx.Client, witness: audit_witness.Witness,
          submission: audit_witness.Submission) -> httpx.Response:
    return client.post(witness.endpoint, content=submission.body, headers={"Content-Type": "text/plain"})


def start(app: Flask) -> None:
    """Collect cosignatures in a thread of this process, every AUDIT_WITNESS_SECONDS."""
    if _THREAD in app.extensions or not configured(app):
        return
    interval = float(app.config.get("AUDIT_WITNESS_SECONDS", 5.0))
    stop = threading.Event()
    app.extensions[_THREAD] = stop

    def run() -> None:
        while not stop.wait(interval):
            try:
                collect(app)
            except Exception:  # the collector must survive a database restart
                log.warning("collecting witness cosignatures failed", exc_info=True)

    threading.Thread(target=run, name="audit-witnesses", daemon=True).start()


def stop(app: Flask) -> None:
    """Stop this process's collector thread (tests; a serving process just exits)."""
    event = app.extensions.pop(_THREAD, None)
    if event is not None:
        event.set()
