"""Signers and JWKs for tests: what the gateway's key store provides, without a database."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "https://gateway.test"


@dataclass(frozen=True)
class KeySigner:
    """A :class:`consent.signing.Signer` over an in-memory key, as the gateway's key store gives."""

    kid: str
    issuer: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def public_jwk(signer: KeySigner) -> dict[str, Any]:
    x = b64url(signer.private_key.public_key().public_bytes_raw())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": signer.kid, "use": "sig", "alg": "EdDSA"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: bytes, payload: bytes, private_key: Ed25519PrivateKey) -> str:
    """A compact JWS over arbitrary header and payload bytes, to build tokens sign() would refuse."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(private_key.sign(signing_input.encode()))}"
