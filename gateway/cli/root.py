"""The ``consent-gateway`` command. Commands are thin: parse, call one function, print."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from gateway import create_app
from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.keys.keyring import key_store


def _create(*_args: Any) -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create, add_default_commands=False, add_version_option=False)
def main() -> None:
    """Consent Gateway: consent-gated biometric editing."""


@main.command("init")
@json_option
def init_command(as_json: bool) -> None:
    """Apply migrations and create a signing key if none exists (idempotent)."""
    from gateway.core import migrate

    url = current_app.config["DATABASE_URL"]
    migrate.upgrade(url)
    now = utcnow()
    with db.unit_of_work() as session:
        store = key_store()
        row = store.active(session)
        created = row is None
        if row is None:
            row = store.create(session, now)
            AuditJournal(session, now).record("key.created", OPERATOR, detail={"kid": row.kid})
        kid = row.kid
    emit(as_json, {"database": _redacted(url), "migrated": True, "kid": kid, "key_created": created},
         f"database ready ({_redacted(url)}); signing key {kid}{' created' if created else ''}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve_command(host: str, port: int, workers: int) -> None:
    """Run the production server (gunicorn) on the configured database."""
    from gateway.core.server import run

    run(host=host, port=port, workers=workers)
