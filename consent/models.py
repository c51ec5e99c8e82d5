"""Tables of the consent domain: subjects, consent requests, one-time codes and consents.

The ``consents`` table is also read by the enforcement side (decisions count uses on it with a
conditional UPDATE), so its columns are a contract: add columns, never rename or drop one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Same convention as the other packages' metadata (consent/ cannot import gateway/).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Request states (DESIGN.md "Consent lifecycle").
REQUEST_PENDING = "pending"
REQUEST_GRANTED = "granted"
REQUEST_DECLINED = "declined"
REQUEST_EXPIRED = "expired"

# Consent states; only ACTIVE permits processing.
CONSENT_ACTIVE = "active"
CONSENT_WITHDRAWN = "withdrawn"
CONSENT_REVOKED = "revoked"
CONSENT_EXPIRED = "expired"
CONSENT_EXHAUSTED = "exhausted"
CONSENT_STATUSES = (CONSENT_ACTIVE, CONSENT_WITHDRAWN, CONSENT_REVOKED, CONSENT_EXPIRED, CONSENT_EXHAUSTED)

# What a one-time code proves control of the contact for.
CODE_FOR_CONSENT = "consent"
CODE_FOR_PORTAL = "portal"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back an aware UTC datetime.

    SQLite returns naive values for timezone-aware columns; comparing those with an aware ``now``
    raises, and silently treating them as local time would shift every expiry by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("consent times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class Subject(Base):
    """A person, known only by a pseudonymous ``sub_…`` id and an encrypted contact address."""

    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Keyed hash of the normalised contact: finds the subject without decrypting every row, and
    # cannot be reversed by whoever only holds a database dump (the key is derived from the master key).
    contact_hash: Mapped[str] = mapped_column(String(64), unique=True)
    contact_kind: Mapped[str] = mapped_column(String(8))  # email | phone
    # AES-GCM(nonce || ciphertext); the contact hash is the associated data, so a ciphertext cannot
    # be moved to another subject's row.
    contact_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ConsentRequest(Base):
    """An app asking one subject for consent to named operations; pending until decided or expired."""

    __tablename__ = "consent_requests"
    __table_args__ = (
        # Retries of one create call find their request; NULL keys (no header) never collide.
        UniqueConstraint("client_id", "idempotency_key", name="uq_consent_requests_client_id_idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # creq_…
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    # Known from the start when the app names a contact (or renews a consent); otherwise set once
    # the subject has proved control of the contact they entered on the consent screen.
    subject_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    # The app's own name for the person; shown back to that app only.
    subject_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    operations: Mapped[list[str]] = mapped_column(JSON)
    algorithms: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    purpose: Mapped[str] = mapped_column(Text)
    duration_days: Mapped[int] = mapped_column(Integer)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    redirect_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    supersedes: Mapped[str | None] = mapped_column(String(40), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # SHA-256 of the canonical request body: a retry with another body under the same key is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class OneTimeCode(Base):
    """A 6-digit code sent to a subject's contact. Only a keyed hash of the code is stored."""

    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_subject_id_purpose", "subject_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # otp_…
    purpose: Mapped[str] = mapped_column(String(16))  # consent | portal
    subject_id: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # for purpose "consent"
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set when a newer code for the same purpose replaced this one: only the latest code counts.
    superseded_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Consent(Base):
    """A granted consent and its signed record; ``status`` follows DPV / ISO/IEC TS 27560 states."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # cns_…
    request_id: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16))
    operations: Mapped[list[str]] = mapped_column(JSON)
    modalities: Mapped[list[str]] = mapped_column(JSON)
    algorithms: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None = any registered
    purpose: Mapped[str] = mapped_column(Text)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime]
    expires_at: Mapped[datetime]
    record: Mapped[str] = mapped_column(Text)  # compact JWS, typ consent+jwt
    revocation: Mapped[str | None] = mapped_column(Text, nullable=True)  # compact JWS or NULL
    supersedes: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Beyond the contract: the app's reference for the subject (shown to that app only) and the
    # revocation's id and author, so readers need not decode the JWS.
    subject_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revocation_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # subject | client | admin | system
    # Biometric binding: modality -> SHA-256 (hex) of the template the consent was granted with, as
    # the signed record's ``evidence`` states it. NULL or empty: granted without binding.
    bindings: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
