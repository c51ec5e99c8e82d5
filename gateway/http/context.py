"""What a view hands its service about the request: who is calling, and the journal their entries go to."""

from __future__ import annotations

from datetime import datetime

from flask import g

from gateway.auditing.trail import AuditJournal, Party
from gateway.core.db import db


def request_journal(now: datetime) -> AuditJournal:
    """The audit journal of this request: its session, its moment, its request id."""
    return AuditJournal(db.session, now, request_id=g.get("request_id"))


def calling_app() -> Party:
    """The app whose access token authenticated this request (set by ``require``)."""
    return Party("client", g.client_id)
