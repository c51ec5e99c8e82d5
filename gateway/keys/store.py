"""Signing keys: Ed25519, private halves encrypted at rest under the master key.

Domains never see this module's store; they get a :class:`Signer` (kid, issuer, sign, public key).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.db import standalone
from gateway.core.errors import GatewayError
from gateway.core.times import format_time
from gateway.keys.models import SigningKey

log = logging.getLogger(__name__)

MASTER_KEY_FILE = "master.key"


class KeyStoreError(GatewayError):
    """The signing key cannot be used; every decision that needs it must fail closed."""

    code = "signing_key_unavailable"


@dataclass(frozen=True)
class Signer:
    kid: str
    issuer: str
    _private: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    @property
    def public_key_bytes(self) -> bytes:
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_master_key(configured: str, instance_path: str) -> bytes:
    """The configured key, or in development a 0600 file in the instance folder."""
    if configured:
        try:
            key = base64.b64decode(configured, validate=True)
        except binascii.Error as exc:
            raise KeyStoreError("CONSENT_GATEWAY_MASTER_KEY is not valid base64") from exc
        if len(key) != 32:
            raise KeyStoreError("CONSENT_GATEWAY_MASTER_KEY must decode to 32 bytes")
        return key
    path = Path(instance_path) / MASTER_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.warning(
            "no CONSENT_GATEWAY_MASTER_KEY set: created a development master key at %s; "
            "set the variable in production",
            path,
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
    key = base64.b64decode(path.read_text().strip())
    if len(key) != 32:
        raise KeyStoreError(f"{path} does not hold a 32-byte key")
    return key


def _new_kid() -> str:
    # Random rather than a thumbprint: a kid must never be reused, even for a re-imported key.
    return "k" + base64.urlsafe_b64encode(secrets.token_bytes(9)).decode().rstrip("=")


# How long a process keeps signing with the key it last read as active. A rotation committed anywhere
# is used by every process at most this long after the commit (plus the request that already holds
# the old signer); until then the old key still signs, and it stays published (retired keys are listed
# in the JWKS), so what it signed verifies. When no key is active any more, the read that follows
# fails, so a decision answers 503 within the same bound.
ACTIVE_KEY_SECONDS = 0.5


@dataclass(frozen=True)
class _ReadKey:
    kid: str
    private: Ed25519PrivateKey
    read_at: float  # time.monotonic()


_ACTIVE = standalone(
    select(SigningKey).where(SigningKey.status == "active").order_by(SigningKey.created_at.desc(), SigningKey.kid)
    .limit(1)
)


class KeyStore:
    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)
        # Decrypted private keys by kid, so a key read again is not decrypted again.
        self._decrypted: dict[str, Ed25519PrivateKey] = {}
        # The active key as last read (see ACTIVE_KEY_SECONDS); replaced whole, so threads need no lock.
        self._active: _ReadKey | None = None

    def create(self, session: Session, now: datetime) -> SigningKey:
        # This process reads the active key again on its next signature (other processes within
        # ACTIVE_KEY_SECONDS of the commit).
        self._active = None
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kid = _new_kid()
        raw = private.private_bytes_raw()
        nonce = secrets.token_bytes(12)
        row = SigningKey(
            kid=kid,
            algorithm="EdDSA",
            public_key=public,
            encrypted_private_key=nonce + self._aead.encrypt(nonce, raw, kid.encode()),
            status="active",
            created_at=now,
        )
        session.add(row)
        session.flush()
        return row

    def active(self, session: Session) -> SigningKey | None:
        # Standalone: reading which key is active never takes SQLite's write lock for the request.
        return session.scalars(_ACTIVE).first()

    def rotate(self, session: Session, now: datetime, *, force: bool = False) -> tuple[SigningKey, list[str]]:
        """Retire the active key for a new one. Refused when this master key cannot decrypt the active key
        (unless ``force``): a process with the wrong master key would otherwise make a key no other
        process can use, and take signing down everywhere."""
        retired = list(session.scalars(select(SigningKey).where(SigningKey.status == "active")))
        if not force:
            for row in retired:
                self.check(row)
        for row in retired:
            # Retired keys stay published so that records signed with them keep verifying.
            row.status = "retired"
            row.retired_at = now
        return self.create(session, now), [r.kid for r in retired]

    def all(self, session: Session) -> list[SigningKey]:
        return list(session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)))

    def signer(self, session: Session, issuer: str) -> Signer:
        """The active key's signer, read through ``session`` at most every ACTIVE_KEY_SECONDS."""
        active = self._active
        if active is not None and time.monotonic() - active.read_at < ACTIVE_KEY_SECONDS:
            return Signer(kid=active.kid, issuer=issuer, _private=active.private)
        read_at = time.monotonic()
        row = self.active(session)
        if row is None:
            self._active = None
            raise KeyStoreError("no active signing key; run `consent-gateway init`")
        signer = self.signer_for(row, issuer)
        self._active = _ReadKey(kid=row.kid, private=signer._private, read_at=read_at)
        return signer

    def check(self, row: SigningKey) -> None:
        """KeyStoreError unless this master key decrypts ``row`` (the one every process must share)."""
        try:
            self.signer_for(row, "")
        except KeyStoreError as exc:
            raise KeyStoreError(f"{exc}: CONSENT_GATEWAY_MASTER_KEY is not the master key it was made with "
                                "(every process must share one)") from None

    def signer_for(self, row: SigningKey, issuer: str) -> Signer:
        private = self._decrypted.get(row.kid)
        if private is None:
            blob = row.encrypted_private_key
            try:
                raw = self._aead.decrypt(blob[:12], blob[12:], row.kid.encode())
            except Exception as exc:  # InvalidTag: wrong master key or a tampered row
                raise KeyStoreError(f"cannot decrypt signing key {row.kid}") from exc
            private = Ed25519PrivateKey.from_private_bytes(raw)
            self._decrypted[row.kid] = private
        return Signer(kid=row.kid, issuer=issuer, _private=private)


def jwk_for(row: SigningKey) -> dict[str, Any]:
    jwk: dict[str, Any] = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(row.public_key).decode().rstrip("="),
        "kid": row.kid,
        "use": "sig",
        "alg": "EdDSA",
    }
    if row.status != "active":
        # Non-standard member, ignored by JOSE libraries: tells a reader the key no longer signs.
        jwk["status"] = row.status
        if row.retired_at is not None:
            jwk["retired_at"] = format_time(row.retired_at)
    return jwk


def jwks(rows: list[SigningKey]) -> dict[str, Any]:
    return {"keys": [jwk_for(r) for r in rows]}
