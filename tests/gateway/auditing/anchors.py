"""What an auditor brings to a verification: the gateway's verifier keys, as `audit keys` prints them."""

from __future__ import annotations

from flask import Flask

from gateway.auditing.runner import verifier_keys
from gateway.core.db import db


def gateway_keys(app: Flask) -> list[str]:
    """The signed-note verifier keys of every signing key of the gateway (what GET /v1/audit/keys serves)."""
    with app.app_context():
        return verifier_keys(db.session, app.config["ISSUER"])
