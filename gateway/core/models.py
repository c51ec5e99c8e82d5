"""The declarative base of every table the gateway owns, and the counters its processes share.

The naming convention and the aware-UTC datetime type are the consent domain's own (one definition,
see ``consent.models``): Alembic then names constraints alike in every metadata, and no column hands
back a naive time on SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from consent.models import NAMING_CONVENTION, UTCDateTime

__all__ = ["NAMING_CONVENTION", "Base", "RateCounter", "UTCDateTime"]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class RateCounter(Base):
    """Fixed-window counters shared by every process through the database."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
