"""The apps' tables: OAuth clients and their access tokens (stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.models import Base


def secret_hash(secret: str) -> str:
    # Client secrets and access tokens are 256-bit random values, so a plain SHA-256 is a sound
    # one-way store (no dictionary to attack); a slow KDF would only slow every request down.
    return hashlib.sha256(secret.encode()).hexdigest()


class OAuthClient(Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(Text)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column()
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # RFC 7591 client metadata, shown to people on the consent screen (https URLs, checked at registration).
    client_uri: Mapped[str | None] = mapped_column(Text, nullable=True)  # the app's home page: its publisher
    policy_uri: Mapped[str | None] = mapped_column(Text, nullable=True)  # its privacy policy
    tos_uri: Mapped[str | None] = mapped_column(Text, nullable=True)  # its terms of service
    logo_uri: Mapped[str | None] = mapped_column(Text, nullable=True)

    # authlib ClientMixin protocol -------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.scope
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.client_secret_hash, secret_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials" and not self.disabled


class OAuthToken(Base):
    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Only the hash is stored: a database dump must not hand out working tokens.
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_in: Mapped[int] = mapped_column(Integer)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    # authlib TokenMixin protocol --------------------------------------------------------
    def check_client(self, client: Any) -> bool:
        return bool(self.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def get_expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        return self.get_expires_at() <= int(time.time())

    def is_revoked(self) -> bool:
        return self.revoked
