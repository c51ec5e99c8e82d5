"""Binds the key store to the app and hands out the current :class:`Signer`."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, current_app
from sqlalchemy.orm import Session

from gateway.keys.store import KeyStore, KeyStoreError, Signer, load_master_key

log = logging.getLogger(__name__)

_EXT = "consent_gateway.keys"


def init_app(app: Flask) -> None:
    try:
        store: KeyStore | KeyStoreError = KeyStore(load_master_key(app.config["MASTER_KEY"], app.instance_path))
    except KeyStoreError as exc:
        # Start anyway so /healthz and /readyz can say what is wrong; every signing path fails closed.
        store = exc
    app.extensions[_EXT] = store
    if not app.config.get("SECRET_KEY"):
        # Portal sessions are signed with a key derived per process only in development; production
        # sets CONSENT_GATEWAY_SECRET_KEY so that every process accepts every session.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)


def key_store() -> KeyStore:
    store = current_app.extensions[_EXT]
    if isinstance(store, KeyStoreError):
        raise store
    assert isinstance(store, KeyStore)
    return store


def signer(session: Session) -> Signer:
    return key_store().signer(session, current_app.config["ISSUER"])
