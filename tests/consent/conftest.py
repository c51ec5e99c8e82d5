"""Fixtures for the consent tests; no database, no app."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.consent.signers import ISSUER, KeySigner, public_jwk


@pytest.fixture
def signer() -> KeySigner:
    return KeySigner(kid="k-test-1", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())


@pytest.fixture
def jwks(signer: KeySigner) -> dict[str, Any]:
    return {"keys": [public_jwk(signer)]}
