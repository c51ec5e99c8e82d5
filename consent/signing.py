"""What the consent domain needs from a signing key, and nothing more.

The key store lives in ``gateway``; the domain only sees this protocol, so a test, an HSM or a KMS
can stand in for it.
"""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    """An Ed25519 signing key published under ``kid`` by ``issuer``."""

    # Read-only properties so that frozen dataclasses satisfy the protocol.
    @property
    def kid(self) -> str: ...

    @property
    def issuer(self) -> str: ...

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``."""
        ...
