"""The ``consent-gateway`` command. Commands are thin: parse, call one function, print."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from gateway import create_app
from gateway.audit_trail import OPERATOR, record
from gateway.clock import utcnow
from gateway.db import db
from gateway.keyring import key_store


def _create(*_args: Any) -> Flask:
    return create_app()


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else human)


json_option = click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")


@click.group(cls=FlaskGroup, create_app=_create, add_default_commands=False, add_version_option=False)
def main() -> None:
    """Consent Gateway: consent-gated biometric editing."""


@main.command("init")
@json_option
def init_command(as_json: bool) -> None:
    """Apply migrations and create a signing key if none exists (idempotent)."""
    from gateway import migrate

    url = current_app.config["DATABASE_URL"]
    migrate.upgrade(url)
    now = utcnow()
    with db.unit_of_work() as session:
        store = key_store()
        row = store.active(session)
        created = row is None
        if row is None:
            row = store.create(session, now)
            record(session, "key.created", OPERATOR, now, detail={"kid": row.kid})
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
    from gateway.server import run

    run(host=host, port=port, workers=workers)


@main.group("clients")
def clients_group() -> None:
    """Apps (OAuth clients)."""


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--scope", required=True, help='space-separated, e.g. "consent:read consent:write edit:face"')
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="may be repeated")
@json_option
def clients_create(name: str, scope: str, redirect_uris: tuple[str, ...], as_json: bool) -> None:
    """Register an app; prints the client secret once (only its hash is stored)."""
    from gateway.oauth import create_client
    from gateway.redirects import validate_redirect_uri

    try:
        uris = [validate_redirect_uri(u) for u in redirect_uris]
        with db.unit_of_work() as session:
            client, secret = create_client(session, name=name, scope=scope, redirect_uris=uris, now=utcnow())
            client_id, client_scope = client.client_id, client.scope
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    emit(
        as_json,
        {"client_id": client_id, "client_secret": secret, "scope": client_scope, "redirect_uris": uris},
        f"client_id:     {client_id}\nclient_secret: {secret}\nscope:         {client_scope}\n"
        "(the secret is shown only now)",
    )


@main.group("keys")
def keys_group() -> None:
    """Signing keys."""


@keys_group.command("rotate")
@json_option
def keys_rotate(as_json: bool) -> None:
    """Create a new signing key; the old one is retired but stays published."""
    now = utcnow()
    with db.unit_of_work() as session:
        row, retired = key_store().rotate(session, now)
        record(session, "key.rotated", OPERATOR, now, detail={"kid": row.kid, "retired": retired})
        kid = row.kid
    emit(as_json, {"kid": kid, "retired": retired}, f"new signing key {kid}; retired {', '.join(retired) or '-'}")


@keys_group.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """List signing keys and their status."""
    with db.unit_of_work() as session:
        rows = [
            {"kid": r.kid, "status": r.status, "created_at": r.created_at, "retired_at": r.retired_at}
            for r in key_store().all(session)
        ]
    emit(as_json, {"keys": rows},
         "\n".join(f"{r['kid']}  {r['status']:8}  {r['created_at']}" for r in rows) or "no keys")


# Command groups of other modules register themselves on ``main`` when imported.
import gateway.cli_audit  # noqa: E402
import gateway.cli_consent  # noqa: E402
import gateway.cli_enforcement  # noqa: E402, F401
