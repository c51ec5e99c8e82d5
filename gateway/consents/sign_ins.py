"""Ending a person's sign-in to /me on the server, so a copy of the signed cookie stops working too."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.consents.models import EndedSignIn
from gateway.core.db import standalone


def end(session: Session, sid: str, *, expires_at: datetime, now: datetime) -> None:
    """Record the sign-in ``sid`` as ended until it would have expired anyway (and forget older ones)."""
    session.execute(delete(EndedSignIn).where(EndedSignIn.expires_at < now))
    if session.get(EndedSignIn, sid) is None:
        session.add(EndedSignIn(sid=sid, expires_at=expires_at))


def ended(session: Session, sid: str) -> bool:
    # Standalone: a page that only shows whether someone is signed in takes no write lock.
    return session.execute(standalone(select(EndedSignIn.sid).where(EndedSignIn.sid == sid))).first() is not None
