"""Binds the key store to the app and hands out the current :class:`Signer`."""

from __future__ import annotations

import logging
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app
from sqlalchemy.orm import Session

from gateway.core.config import ConfigError
from gateway.keys.store import KeyStore, KeyStoreError, Signer, load_master_key

log = logging.getLogger(__name__)

_EXT = "consent_gateway.keys"


def init_app(app: Flask) -> None:
    store: KeyStore | KeyStoreError
    try:
        master_key = load_master_key(app.config["MASTER_KEY"], app.instance_path)
        store = KeyStore(master_key)
    except KeyStoreError as exc:
        if app.config["MASTER_KEY"]:
            # The operator set a key that is no key: nothing could ever be signed or unsealed with it.
            raise ConfigError(str(exc)) from None
        # A broken development key file: start anyway so /healthz and /readyz can say what is wrong;
        # every signing path fails closed.
        store, master_key = exc, None
    app.extensions[_EXT] = store
    if not app.config.get("SECRET_KEY"):
        if master_key is not None:
            # Every worker and process derives the same secret, so a portal session or CSRF token made
            # by one is accepted by all; it changes only with the master key.
            app.config["SECRET_KEY"] = session_secret(master_key)
        else:
            # No master key: nothing can be signed anyway; sessions last as long as this process.
            app.config["SECRET_KEY"] = secrets.token_urlsafe(32)


def session_secret(master_key: bytes) -> str:
    """The portal's session-signing secret, derived from the master key (HKDF, its own label)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"consent-gateway portal session secret v1").derive(master_key)
    return derived.hex()


def key_store() -> KeyStore:
    store = current_app.extensions[_EXT]
    if isinstance(store, KeyStoreError):
        raise store
    assert isinstance(store, KeyStore)
    return store


def signer(session: Session) -> Signer:
    return key_store().signer(session, current_app.config["ISSUER"])
