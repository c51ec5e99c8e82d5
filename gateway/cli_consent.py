"""``consent-gateway consents sweep``: write down the ends that time and use counts already decided.

Registered on the main command group when ``gateway.cli`` imports this module. Readers already treat
an active consent past its end as ended; the sweep makes the stored status and the audit log say so
without waiting for someone to read it. Run it periodically (cron, a systemd timer).
"""

from __future__ import annotations

from consent import lifecycle
from consent import requests as consent_requests
from gateway.cli import emit, json_option, main
from gateway.clock import utcnow
from gateway.consent_services import AuditJournal
from gateway.db import db


@main.group("consents")
def consents_group() -> None:
    """Consents and consent requests."""


@consents_group.command("sweep")
@json_option
def sweep_command(as_json: bool) -> None:
    """End consents past their time or uses and expire overdue requests, each with its audit entry."""
    now = utcnow()
    with db.unit_of_work() as session:
        journal = AuditJournal(session, now)
        ended = lifecycle.sweep(session, journal=journal, now=now)
        expired = consent_requests.sweep(session, journal=journal, now=now)
    emit(as_json, {"consents_ended": ended, "requests_expired": expired},
         f"{ended} consent(s) ended, {expired} request(s) expired")
