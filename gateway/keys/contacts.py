"""Personal data at rest under the master key: contact addresses (AES-GCM and a keyed lookup hash) and
biometric templates (AES-GCM).

Separate subkeys are derived with HKDF for each use, so the key that finds a subject by contact can
never decrypt one, and a leak of one derived key does not expose the others or the master key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from consent.subjects import Contact
from gateway.keys.store import KeyStoreError, load_master_key

_EXT = "consent_gateway.contacts"
_NONCE_BYTES = 12


def _subkey(master_key: bytes, purpose: str) -> bytes:
    # A fixed salt is fine here: the master key is already uniformly random (RFC 5869 §3.1).
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"consent-gateway",
                info=f"consent-gateway/{purpose}/v1".encode()).derive(master_key)


class Vault:
    """Implements :class:`consent.subjects.ContactVault` and holds the pepper for one-time codes."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(_subkey(master_key, "contact-encryption"))
        self._lookup_key = _subkey(master_key, "contact-lookup")
        self.code_pepper = _subkey(master_key, "one-time-codes")
        self._templates = AESGCM(_subkey(master_key, "template-encryption"))

    def lookup_hash(self, contact: Contact) -> str:
        message = f"{contact.kind}:{contact.value}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    def seal(self, contact: Contact, lookup_hash: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        # The lookup hash is the associated data: a ciphertext copied onto another subject's row
        # fails to decrypt instead of sending that subject's codes to someone else.
        return nonce + self._aead.encrypt(nonce, contact.value.encode(), lookup_hash.encode())

    def unseal(self, sealed: bytes, lookup_hash: str) -> str:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], lookup_hash.encode())
        except Exception as exc:  # InvalidTag: wrong master key or a tampered row
            raise KeyStoreError("cannot decrypt a stored contact (wrong master key or tampered row)") from exc
        return plain.decode()


    def seal_template(self, template: bytes, row_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        # Bound to its row: a template copied onto another subject's row does not decrypt.
        return nonce + self._templates.encrypt(nonce, template, row_id.encode())

    def unseal_template(self, sealed: bytes, row_id: str) -> bytes:
        try:
            return self._templates.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], row_id.encode())
        except Exception as exc:  # InvalidTag
            raise KeyStoreError("cannot decrypt a stored template (wrong master key or tampered row)") from exc


def vault() -> Vault:
    """The app's vault, built on first use (the master key may live in the instance folder)."""
    found = current_app.extensions.get(_EXT)
    if isinstance(found, Vault):
        return found
    created = Vault(load_master_key(current_app.config["MASTER_KEY"], current_app.instance_path))
    current_app.extensions[_EXT] = created
    return created
