"""The portal's own table: sign-ins to /me that were ended before their time ran out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class EndedSignIn(Base):
    """A signed-out /me session. The session itself lives in a signed cookie, which the server cannot
    take back; a copy of the cookie (a shared phone, a saved request) would otherwise stay signed in
    until it expires. A row lives as long as the sign-in could have, then goes."""

    __tablename__ = "portal_ended_sign_ins"

    sid: Mapped[str] = mapped_column(String(43), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
