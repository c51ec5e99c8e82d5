"""Writes audit entries for the HTTP edge and the CLI, with who did it and which request it was."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import g, has_request_context
from sqlalchemy.orm import Session

from audit import log as audit_log


@dataclass(frozen=True)
class Actor:
    type: str  # client | subject | admin | auditor | system
    id: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}


SYSTEM = Actor("system", "consent-gateway")
OPERATOR = Actor("admin", "cli")


def record(session: Session, action: str, actor: Actor, now: datetime, **fields: Any) -> None:
    """Queue an audit entry in ``session``'s transaction (it commits with the change it records)."""
    entry: dict[str, Any] = {"action": action, "actor": actor.as_dict(), **fields}
    if has_request_context() and "request_id" not in entry:
        entry["request_id"] = g.get("request_id")
    audit_log.append(session, entry, now)
