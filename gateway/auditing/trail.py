"""The one way into the audit log: a journal bound to a session, a moment and (over HTTP) a request.

:class:`AuditJournal` is the gateway's implementation of the consent domain's
:class:`consent.journal.Journal` port, and every service of the gateway writes through it too, so an
entry always has the same shape whoever writes it. The entry is queued in the caller's transaction:
it commits with the change it records, or neither does (DESIGN principle 2).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from audit import log as audit_log
from consent.journal import SYSTEM, Party

__all__ = ["OPERATOR", "SYSTEM", "AuditJournal", "Party"]

# The operator at the command line (``consent-gateway …``).
OPERATOR = Party("admin", "cli")


class AuditJournal:
    """Queues audit entries in ``session``; ``request_id`` ties them to the HTTP request that caused them."""

    def __init__(self, session: Session, now: datetime, *, request_id: str | None = None) -> None:
        self.session = session
        self.now = now
        self.request_id = request_id

    def record(self, action: str, party: Party, **fields: Any) -> None:
        audit_log.append(self.session, self._entry(action, party, fields), self.now)

    def queue_row(self, action: str, party: Party, **fields: Any) -> dict[str, Any]:
        """The queue row :meth:`record` would add, for a caller that inserts it in its own statement."""
        return {"ts": self.now, "body": audit_log.queued_body(self._entry(action, party, fields), self.now)}

    def _entry(self, action: str, party: Party, fields: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {"action": action, "actor": {"type": party.type, "id": party.id}, **fields}
        if self.request_id is not None:
            entry.setdefault("request_id", self.request_id)
        return entry
