"""``consent-gateway labels verify FILE``: is this file's AIGC label ours, and where does the file come from?
``consent-gateway labels ca create --out DIR``: the private CA whose certificate signs C2PA manifests.

Added to the root group by ``gateway.cli``. Reads the keys and records of this gateway's database; to
verify without one, use the vendorable ``python -m gateway.labels.verifier FILE --jwks … --issuer …``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.labels.c2pa_credentials import create_ca
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


@labels_group.group("ca", cls=AppGroup)
def ca_group() -> None:
    """The certificate authority of C2PA content credentials (docs/LABELS.md)."""


@ca_group.command("create")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for root.pem, c2pa-chain.pem and c2pa-key.pem (not overwritten).")
@click.option("--name", default=None,
              help="Organisation in the certificates' names (default: LABEL_PRODUCER, else ISSUER).")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="Validity of the signing certificate.")
@json_option
def ca_create_command(out: Path, name: str | None, days: int, as_json: bool) -> None:
    """Create a private root CA and the Ed25519 certificate that signs C2PA manifests.

    Set CONSENT_GATEWAY_LABEL_C2PA_CERT_CHAIN to DIR/c2pa-chain.pem and CONSENT_GATEWAY_LABEL_C2PA_KEY to
    DIR/c2pa-key.pem; give root.pem to whoever verifies the manifests (their trust anchor).
    """
    config = current_app.config
    organisation = name or str(config["LABEL_PRODUCER"] or config["ISSUER"])
    try:
        paths = create_ca(out, organisation, now=utcnow(), leaf_days=days)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from exc
    emit(as_json, {"root": str(paths.root), "cert_chain": str(paths.cert_chain), "key": str(paths.key)},
         f"trust anchor      {paths.root}\n"
         f"certificate chain {paths.cert_chain}  (LABEL_C2PA_CERT_CHAIN)\n"
         f"private key       {paths.key}  (LABEL_C2PA_KEY, mode 0600)")
