"""Alembic is the only thing that shapes the schema, and it matches the models exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from gateway import create_app
from gateway.cli import main
from gateway.core import migrate
from tests.conftest import BACKENDS, app_config, fresh_database


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A database that has been migrated, then taken back to nothing."""
    for url in fresh_database(request.param, request, tmp_path):
        migrate.downgrade(url, "base")
        yield url


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_no_drift_between_models_and_migrations(database_url: str) -> None:
    migrate.check(database_url)


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    assert _tables(empty_database) == set()
    migrate.upgrade(empty_database)
    tables = _tables(empty_database)
    assert {"oauth_clients", "oauth_tokens", "signing_keys", "audit_queue"} <= tables
    migrate.downgrade(empty_database, "base")
    assert _tables(empty_database) == set()
    migrate.upgrade(empty_database)
    assert _tables(empty_database) == tables
    migrate.check(empty_database)


def test_app_start_does_not_create_tables(empty_database: str, tmp_path: Path) -> None:
    app = create_app(app_config(empty_database, tmp_path))
    app.test_client().get("/readyz")
    assert _tables(empty_database) == set()


def test_init_is_idempotent(empty_database: str, tmp_path: Path) -> None:
    app = create_app(app_config(empty_database, tmp_path))
    runner = app.test_cli_runner()
    first = runner.invoke(main, ["init", "--json"])
    assert first.exit_code == 0, first.output
    first_out = json.loads(first.output[first.output.index("{"):])
    assert first_out["key_created"] is True
    second = runner.invoke(main, ["init", "--json"])
    second_out = json.loads(second.output[second.output.index("{"):])
    assert second_out == {**first_out, "key_created": False}
