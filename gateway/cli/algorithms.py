"""``consent-gateway algorithms …`` and ``consent-gateway demo-upstream``.

Added to the root group by ``gateway.cli``. Thin, like every
command: parse, call one registry function in a unit of work, print.
"""

from __future__ import annotations

from typing import Any

import click
from flask.cli import AppGroup

from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.registry import algorithms as registry


def _row(row: Any) -> dict[str, Any]:
    return {**registry.public_view(row), "upstream_url": row.upstream_url,
            "created_at": row.created_at, "suspended_at": row.suspended_at}


@click.group("algorithms", cls=AppGroup)
def algorithms_group() -> None:
    """The algorithm white list (filed algorithms the gateway may route to)."""


@algorithms_group.command("add")
@click.option("--name", required=True, help="the algorithm's name, shown to people on the notice")
@click.option("--filing-number", required=True, help="the regulator's filing number (unique)")
@click.option("--provider", required=True, help="who provides the algorithm (the filing holder)")
@click.option("--product", required=True, help="the product or service it is part of")
@click.option("--operations", required=True, help="comma-separated, e.g. face_swap,voice_clone")
@click.option("--upstream", "upstream_url", required=True, help="URL the gateway forwards edits to")
@json_option
def algorithms_add(*, name: str, filing_number: str, provider: str, product: str, operations: str,
                   upstream_url: str, as_json: bool) -> None:
    """Register an algorithm; it is active at once."""
    spec = registry.AlgorithmSpec(
        filing_number=filing_number.strip(), name=name, provider=provider, product=product,
        operations=tuple(op.strip() for op in operations.split(",") if op.strip()), upstream_url=upstream_url,
    )
    try:
        now = utcnow()
        with db.unit_of_work() as session:
            payload = _row(registry.register(session, spec, actor=OPERATOR, journal=AuditJournal(session, now),
                                             now=now))
    except registry.RegistryError as exc:
        raise click.UsageError(str(exc)) from exc
    emit(as_json, payload, f"registered {payload['filing_number']} ({payload['name']}): "
                           f"{', '.join(payload['operations'])} -> {payload['upstream_url']}")


@algorithms_group.command("list")
@json_option
def algorithms_list(as_json: bool) -> None:
    """List registered algorithms, active and suspended."""
    with db.unit_of_work() as session:
        rows = [_row(row) for row in registry.list_algorithms(session)]
    emit(as_json, {"algorithms": rows},
         "\n".join(f"{r['filing_number']}  {r['status']:9}  {r['name']}  {','.join(r['operations'])}  "
                   f"{r['upstream_url']}" for r in rows) or "no algorithms registered")


@algorithms_group.command("suspend")
@click.argument("filing_number")
@json_option
def algorithms_suspend(filing_number: str, as_json: bool) -> None:
    """Suspend an algorithm: decisions naming it are denied and no edit reaches it from now on."""
    try:
        now = utcnow()
        with db.unit_of_work() as session:
            payload = _row(registry.suspend(session, filing_number, actor=OPERATOR,
                                            journal=AuditJournal(session, now), now=now))
    except registry.RegistryError as exc:
        raise click.UsageError(str(exc)) from exc
    emit(as_json, payload, f"suspended {payload['filing_number']}")
