"""``consent-gateway demo-upstream``: the reference editing service of the demo (needs the ``[demo]`` extra)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from gateway.demo import DEMO_FILING_NUMBER


@click.command("demo-upstream")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8001, show_default=True, type=int, help="port to listen on")
@click.option("--issuer", default=None, help="the gateway whose tickets to trust [default: configured ISSUER]")
@click.option("--filing-number", default=DEMO_FILING_NUMBER, show_default=True,
              help="the filing number this upstream answers for (the tickets' audience)")
def demo_upstream_command(*, host: str, port: int, issuer: str | None, filing_number: str) -> None:
    """Run the reference editing service (verifies tickets, edits images and WAV audio)."""
    from werkzeug.serving import run_simple

    try:
        from gateway.demo.upstream import create_demo_upstream
    except ImportError as exc:
        raise click.ClickException(
            f"the demo needs the [demo] extra ({exc.name} is missing): "
            "pip install 'biometric-consent-gateway[demo]'") from exc

    trusted = (issuer or current_app.config["ISSUER"]).rstrip("/")
    app = create_demo_upstream(issuer=trusted, jwks=f"{trusted}/.well-known/jwks.json",
                               filing_number=filing_number, warm_keys=True)
    click.echo(f"demo upstream for {filing_number} on http://{host}:{port}/edit, trusting {trusted}")
    # One process on purpose: the demo's replay cache is in memory (see consent/ticket_verifier.py).
    run_simple(host, port, app, threaded=True)
