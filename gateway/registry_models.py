"""Tables of the enforcement side: the algorithm white list and the decisions taken against it.

Kept apart from ``gateway.models`` (the foundation's tables) so that this metadata has its own
migration branch; the naming convention is the shared one, so Alembic names constraints alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.naming import NAMING_CONVENTION

ALGORITHM_ACTIVE = "active"
ALGORITHM_SUSPENDED = "suspended"

OUTCOME_COMPLETED = "completed"
OUTCOME_FAILED = "failed"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DecisionRow(Base):
    """One answer to "may this app run this edit now?", allowed or denied. Media only as digests."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_client_id_created_at", "client_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # dec_…, the ticket's jti
    client_id: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(100))  # filing number as requested
    consents: Mapped[list[str]] = mapped_column(JSON)
    media: Mapped[dict[str, str]] = mapped_column(JSON)  # role -> SHA-256 hex
    allowed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ticket_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    output_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
