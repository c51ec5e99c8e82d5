"""The ``consent-gateway`` command. Commands are thin: parse, call one function, print."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway import create_app
from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.config import ConfigError
from gateway.core.db import db
from gateway.keys.keyring import key_store
from gateway.keys.store import KeyStoreError


def _create(*_args: Any) -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


class _Root(AppGroup):
    """The product's own command: Flask's --app/--debug/--env-file are not ours to offer.

    Commands still run in an app context (built once per invocation, from the environment); a test
    runner passes its own app through ``obj``. A database that cannot be reached or used, and a key
    that cannot be loaded, end the command with one line saying so, not a traceback.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        extra.setdefault("obj", ScriptInfo(create_app=_create, set_debug_flag=False))
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            reason = _first_line(exc.orig)
            if "no such table" in reason or "does not exist" in reason:
                reason += " (run `consent-gateway init` on this database first)"
            raise click.ClickException(f"the database cannot be used: {reason}") from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(f"the database cannot be used: {_first_line(exc)}") from exc
        except (ConfigError, KeyStoreError) as exc:
            raise click.ClickException(str(exc)) from exc


def _first_line(exc: BaseException | None) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="biometric-consent-gateway", prog_name="consent-gateway")
def main() -> None:
    """Consent Gateway: consent-gated biometric editing.

    Configuration comes from CONSENT_GATEWAY_* environment variables (docs/OPERATIONS.md); every
    one-shot command prints JSON with --json (serve and demo-upstream log JSON lines).
    """


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
        else:
            store.check(row)  # the master key of this deployment, or nothing can be signed
        kid = row.kid
    emit(as_json, {"database": _redacted(url), "migrated": True, "kid": kid, "key_created": created},
         f"database ready ({_redacted(url)}); signing key {kid}{' created' if created else ''}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=int, help="port to listen on")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="request threads in each worker (a connection holds one while its request is read and answered)")
def serve_command(host: str, port: int, workers: int, threads: int) -> None:
    """Run the production server (gunicorn) on the configured database."""
    from gateway.core.server import PortInUse, run

    try:
        run(host=host, port=port, workers=workers, threads=threads)
    except PortInUse as exc:
        raise click.ClickException(str(exc)) from exc
