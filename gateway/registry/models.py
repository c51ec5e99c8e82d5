"""The algorithm white list: filed algorithms the gateway may route to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base

ALGORITHM_ACTIVE = "active"
ALGORITHM_SUSPENDED = "suspended"


class Algorithm(Base):
    """A filed editing algorithm the gateway may route to (Deep Synthesis Provisions, Art. 19)."""

    __tablename__ = "algorithms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The filing number is what consents, tickets and the audit log name; unique across the registry.
    filing_number: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(String(200))
    operations: Mapped[list[str]] = mapped_column(JSON)
    # Never published: apps talk to the gateway, only the gateway talks to the upstream.
    upstream_url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=ALGORITHM_ACTIVE)
    created_at: Mapped[datetime] = mapped_column()
    suspended_at: Mapped[datetime | None] = mapped_column(nullable=True)
