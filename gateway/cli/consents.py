"""``consent-gateway consents sweep``: write down the ends that time and use counts already decided.

Added to the root group by ``gateway.cli``. Readers already treat
an active consent past its end as ended; the sweep makes the stored status and the audit log say so
without waiting for someone to read it. Run it periodically (cron, a systemd timer).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from consent import lifecycle
from consent import requests as consent_requests
from gateway.auditing.trail import AuditJournal
from gateway.biometrics.binding import shred_unused
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db


@click.group("consents", cls=AppGroup)
def consents_group() -> None:
    """Consents and consent requests."""


@consents_group.command("sweep")
@json_option
def sweep_command(as_json: bool) -> None:
    """End consents past their time or uses, expire overdue requests and delete biometric templates no active
    consent needs, each with its audit entry."""
    now = utcnow()
    with db.unit_of_work() as session:
        journal = AuditJournal(session, now)
        ended = lifecycle.sweep(session, journal=journal, now=now)
        expired = consent_requests.sweep(session, journal=journal, now=now)
        # Expired and used-up consents end here, so this is where their templates go.
        shredded = shred_unused(session, journal=journal, now=now)
    emit(as_json, {"consents_ended": ended, "requests_expired": expired, "templates_deleted": shredded},
         f"{ended} consent(s) ended, {expired} request(s) expired, {shredded} template(s) deleted")
