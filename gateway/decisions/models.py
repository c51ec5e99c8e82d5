"""Decisions taken against the white list: one row per answer, allowed or denied; media only as digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base

OUTCOME_COMPLETED = "completed"
OUTCOME_FAILED = "failed"
OUTCOMES = (OUTCOME_COMPLETED, OUTCOME_FAILED)


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
    created_at: Mapped[datetime] = mapped_column()
    ticket_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    output_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(nullable=True)
