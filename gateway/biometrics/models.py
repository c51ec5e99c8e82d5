"""Biometric templates at rest: one row per enrolled template, sealed under the master key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


class BiometricTemplate(Base):
    """An embedding (never the photo or recording), sealed; found by the digest a consent's record names.

    A subject has one row per enrolment: a consent granted with a template keeps naming that
    template's digest, so re-enrolling for a new consent does not change what an older record proves.
    """

    __tablename__ = "biometric_templates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # tpl_…
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the template's canonical bytes
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # nonce ‖ AES-GCM(template), bound to this row
    created_at: Mapped[datetime]
