"""``consent-gateway clients …``: apps (OAuth clients)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db


@click.group("clients", cls=AppGroup)
def clients_group() -> None:
    """Apps (OAuth clients)."""


@clients_group.command("create")
@click.option("--name", required=True, help="the app's name, shown to people on the consent screen")
@click.option("--scope", required=True, help='space-separated, e.g. "consent:read consent:write edit:face"')
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="may be repeated")
@json_option
def clients_create(name: str, scope: str, redirect_uris: tuple[str, ...], as_json: bool) -> None:
    """Register an app; prints the client secret once (only its hash is stored)."""
    from gateway.auth.oauth import create_client
    from gateway.auth.redirects import validate_redirect_uri

    try:
        uris = [validate_redirect_uri(u) for u in redirect_uris]
        now = utcnow()
        with db.unit_of_work() as session:
            client, secret = create_client(session, name=name, scope=scope, redirect_uris=uris, actor=OPERATOR,
                                           journal=AuditJournal(session, now), now=now)
            client_id, client_scope = client.client_id, client.scope
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    emit(
        as_json,
        {"client_id": client_id, "client_secret": secret, "scope": client_scope, "redirect_uris": uris},
        f"client_id:     {client_id}\nclient_secret: {secret}\nscope:         {client_scope}\n"
        "(the secret is shown only now)",
    )
