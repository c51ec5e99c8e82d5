"""How the consent services report what happened, without knowing where the audit log lives.

Every service that changes state takes a :class:`Journal` and writes one entry per step into it;
the gateway's journal queues the entry in the same transaction as the change (DESIGN principle 2),
so the domain cannot forget the audit entry and still stays free of ``gateway`` and ``audit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

PartyType = Literal["client", "subject", "admin", "auditor", "system"]


@dataclass(frozen=True)
class Party:
    """Who did it: an app (client id), a subject (``sub_…``), an administrator, an auditor or the system."""

    type: PartyType
    id: str


SYSTEM = Party("system", "consent-gateway")


class Journal(Protocol):
    def record(self, action: str, party: Party, **fields: Any) -> None:
        """Queue one audit entry (``action`` such as ``consent.granted``) in the caller's transaction."""
        ...
