"""``consent-gateway labels verify FILE``: is this file's AIGC label ours, and where does the file come from?

Added to the root group by ``gateway.cli``. Reads the keys and records of this gateway's database; to
verify without one, use the vendorable ``python -m gateway.labels.verifier FILE --jwks … --issuer …``.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.labels.service import verify_file


@click.group("labels", cls=AppGroup)
def labels_group() -> None:
    """Output labels (GB 45438-2025 AIGC implicit labels)."""


@labels_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
def verify_command(file: str, as_json: bool) -> None:
    """Check FILE's label against this gateway's keys; say its decision, algorithm, app and consents.

    Exits 1 if the label does not verify.
    """
    with open(file, "rb") as media, db.unit_of_work() as session:
        report = verify_file(session, media, issuer=str(current_app.config["ISSUER"]), now=utcnow())
    emit(as_json, report, _human(file, report))
    if not report["valid"]:
        sys.exit(1)


def _human(file: str, report: dict[str, object]) -> str:
    if not report["valid"]:
        error = report["error"]
        assert isinstance(error, dict)
        return f"{file}: NOT VERIFIED ({error['code']}): {error['detail']}"
    decision, algorithm, app = report["decision"], report["algorithm"], report["app"]
    consents = report["consents"]
    assert isinstance(algorithm, dict)
    assert isinstance(app, dict)
    assert isinstance(consents, list)
    lines = [
        f"{file}: verified {report['container']} label, signed by key {report['kid']} at {report['signed_at']}",
        f"  decision   {report['label']['ProduceID'] if isinstance(report['label'], dict) else '?'}"
        + ("" if isinstance(decision, dict) else " (not in this gateway's records)")
        + (" - the exact bytes the app received" if isinstance(decision, dict) and decision["received_by_app"]
           else ""),
        f"  operation  {report['operation']}",
        f"  algorithm  {algorithm['filing_number']} {algorithm['name'] or '(not registered)'}",
        f"  app        {app['client_id']} {app['name'] or '(unknown)'}",
    ]
    lines += [f"  consent    {c['id']} {c['status'] or 'unknown'}" for c in consents if isinstance(c, dict)]
    lines.append("  all consents still active" if report["consents_active"] else "  NOT all consents are still active")
    return "\n".join(lines)
