"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when TEST_DATABASE_URL is set).

Each test gets a fresh database copied from a template migrated once per run, so tests can start real
servers, threads and processes against it; nothing is mocked.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway import create_app
from gateway.core import migrate
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.keys.keyring import key_store

MASTER_KEY = base64.b64encode(b"k" * 32).decode()
# The gateway's portal cookie (not Flask's default "session": see gateway/core/config.py).
SESSION_COOKIE = "consent_gateway_session"
ISSUER = "http://gateway.test"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

# The product binds faces by default (a face consent is granted only with a selfie). Tests written about
# other things grant face consents without one, so they run as an operator who turned binding off; this
# reaches the servers they start through the environment. The binding tests (tests/gateway/biometrics)
# turn it on explicitly, and tests/e2e/test_binding_demo.py runs the product's own defaults.
NO_BINDING = "[]"
os.environ.setdefault("CONSENT_GATEWAY_BINDING_MODALITIES", NO_BINDING)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        return
    skip = pytest.mark.skip(reason="TEST_DATABASE_URL not set")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        # Fold the WAL into the main file so a plain copy carries the whole schema.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _pg_admin() -> Any:
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    name = f"cg_template_{os.getpid()}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "gateway.sqlite3"
        shutil.copy(template, target)
        yield f"sqlite:///{target}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"cg_{uuid.uuid4().hex[:16]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, request, tmp_path)


def app_config(database_url: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    outbox = tmp_path / "outbox"
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "MASTER_KEY": MASTER_KEY,
        "ISSUER": ISSUER,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "NOTIFIER": f"outbox:{outbox}",
        "BINDING_MODALITIES": (),
        **extra,
    }


def init_keys(app: Flask) -> str:
    with app.app_context(), db.unit_of_work() as session:
        row = key_store().active(session) or key_store().create(session, utcnow())
        return row.kid


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    application = create_app(app_config(database_url, tmp_path))
    application.instance_path = str(tmp_path / "instance")
    init_keys(application)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
