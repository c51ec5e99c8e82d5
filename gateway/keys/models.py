"""The signing keys' table: public halves in clear, private halves encrypted under the master key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="EdDSA")
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # AES-GCM(nonce || ciphertext) under the master key, with the kid as associated data so a
    # ciphertext cannot be moved to another key row.
    encrypted_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column()
    retired_at: Mapped[datetime | None] = mapped_column(nullable=True)
