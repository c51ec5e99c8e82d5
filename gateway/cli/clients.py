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
@click.option("--client-uri", help="the app's home page, shown as its publisher on the consent screen (https)")
@click.option("--policy-uri", help="the app's privacy policy, linked from the consent screen (https)")
@click.option("--tos-uri", help="the app's terms of service, linked from the consent screen (https)")
@click.option("--logo-uri", help="the app's logo (an image, shown 48x48 on the consent screen; https)")
@json_option
def clients_create(*, name: str, scope: str, redirect_uris: tuple[str, ...], client_uri: str | None,
                   policy_uri: str | None, tos_uri: str | None, logo_uri: str | None, as_json: bool) -> None:
    """Register an app; prints the client secret once (only its hash is stored).

    The --client-uri, --policy-uri, --tos-uri and --logo-uri options are the RFC 7591 client
    metadata of the same names; plain http is accepted only on loopback, for development.
    """
    from gateway.auth.oauth import create_client
    from gateway.auth.redirects import validate_redirect_uri

    try:
        uris = [validate_redirect_uri(u) for u in redirect_uris]
        now = utcnow()
        with db.unit_of_work() as session:
            client, secret = create_client(session, name=name, scope=scope, redirect_uris=uris, actor=OPERATOR,
                                           journal=AuditJournal(session, now), now=now, client_uri=client_uri,
                                           policy_uri=policy_uri, tos_uri=tos_uri, logo_uri=logo_uri)
            client_id, client_scope = client.client_id, client.scope
            metadata = {"client_uri": client.client_uri, "policy_uri": client.policy_uri,
                        "tos_uri": client.tos_uri, "logo_uri": client.logo_uri}
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    registered = "".join(f"{key + ':':<15}{value}\n" for key, value in metadata.items() if value)
    emit(
        as_json,
        {"client_id": client_id, "client_secret": secret, "scope": client_scope, "redirect_uris": uris, **metadata},
        f"client_id:     {client_id}\nclient_secret: {secret}\nscope:         {client_scope}\n{registered}"
        "(the secret is shown only now)",
    )
