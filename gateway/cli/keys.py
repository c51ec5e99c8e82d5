"""``consent-gateway keys …``: the signing keys."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.cli.output import emit, json_option
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.keys.keyring import key_store


@click.group("keys", cls=AppGroup)
def keys_group() -> None:
    """Signing keys."""


@keys_group.command("rotate")
@click.option("--force", is_flag=True,
              help="retire an active key this master key cannot decrypt (a damaged key, or one made with the "
                   "wrong master key); never needed otherwise")
@json_option
def keys_rotate(force: bool, as_json: bool) -> None:
    """Create a new signing key; the old one is retired but stays published."""
    now = utcnow()
    with db.unit_of_work() as session:
        row, retired = key_store().rotate(session, now, force=force)
        AuditJournal(session, now).record("key.rotated", OPERATOR, detail={"kid": row.kid, "retired": retired})
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
