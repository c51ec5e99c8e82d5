"""Alembic environment. Metadata comes from the packages, never from a running app."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import MetaData

from gateway.core.db import engine_for

config = context.config


def _metadata() -> list[MetaData]:
    # Every table the gateway owns hangs off one metadata once its model modules are imported; a missing
    # module is an error here, never a silently smaller schema for `alembic check` to compare.
    from audit.models import Base as AuditBase
    from consent.models import Base as ConsentBase
    from gateway.core.models import Base as GatewayBase
    from gateway.core.schema import import_models

    import_models()
    return [GatewayBase.metadata, AuditBase.metadata, ConsentBase.metadata]


target_metadata = _metadata()


def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    # Monthly partitions of audit_entries are created by the sequencer, not by migrations.
    return not (type_ == "table" and name is not None and name.startswith("audit_entries_y"))


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CONSENT_GATEWAY_DATABASE_URL", "")
    if not url:
        raise RuntimeError("no database URL: pass one through consent-gateway init or set it in alembic.ini")
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_for(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables the portable way.
        render_as_batch=True,
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
