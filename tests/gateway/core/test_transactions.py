"""A transaction begins at its first statement that is not a standalone read, on both databases.

So a request that only reads sends no BEGIN (and, on SQLite, never queues for the write lock), while
everything a request writes still shares one transaction, committed or rolled back together.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import Connection, func, select, text

from consent import lifecycle
from consent.models import Consent
from gateway.core.db import STANDALONE_READ, db, engine_for, standalone
from gateway.core.models import RateCounter
from tests.factories import make_app_client, make_consent


def _in_transaction(connection: Connection) -> bool:
    """What the database connection itself says, not what SQLAlchemy believes."""
    driver = connection.connection.driver_connection
    if isinstance(driver, sqlite3.Connection):
        return driver.in_transaction
    from psycopg.pq import TransactionStatus

    return bool(driver.info.transaction_status != TransactionStatus.IDLE)


def _counters(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(RateCounter)) or 0)


def test_standalone_reads_begin_nothing_and_the_first_write_begins_the_transaction(app: Flask) -> None:
    with app.app_context():
        session = db.session
        connection = session.connection()
        session.execute(standalone(select(func.count()).select_from(Consent)))
        session.get(Consent, "cns_none", execution_options=STANDALONE_READ)
        assert not _in_transaction(connection)
        session.add(RateCounter(key="test", window_start=0, count=1))
        session.flush()
        assert _in_transaction(connection)
        session.execute(text("UPDATE rate_counters SET count = count + 1 WHERE key = 'test'"))
        session.rollback()  # both writes, one transaction
        assert not _in_transaction(session.connection())
    assert _counters(app) == 0


def test_a_session_that_only_read_commits_without_a_transaction(app: Flask) -> None:
    with app.app_context():
        session = db.session
        session.execute(standalone(select(func.count()).select_from(Consent)))
        session.commit()
        session.add(RateCounter(key="after", window_start=0, count=1))
        session.commit()
    assert _counters(app) == 1


def test_a_streamed_read_runs_in_a_transaction_even_when_marked_standalone(app: Flask) -> None:
    # PostgreSQL's server-side cursors exist only inside a transaction.
    edit_app = make_app_client(app, scope="edit:face")
    ids = {make_consent(app, edit_app.client_id) for _ in range(3)}
    with app.app_context():
        streamed = db.session.execute(standalone(select(Consent.id)).execution_options(stream_results=True,
                                                                                      yield_per=2))
        assert {row.id for row in streamed} == ids


def test_a_locking_read_cannot_be_standalone(app: Flask) -> None:
    with app.app_context(), pytest.raises(ValueError, match="locking read"):
        lifecycle.get_consent(db.session, "cns_none", journal=None,  # type: ignore[arg-type]
                              now=datetime.now(UTC), for_update=True, read_options=STANDALONE_READ)


@pytest.mark.parametrize("url", ["postgresql+psycopg2://postgres@127.0.0.1/test", "mysql://root@127.0.0.1/test"])
def test_an_engine_is_only_made_for_the_drivers_whose_transactions_it_begins(url: str) -> None:
    with pytest.raises(ValueError, match="psycopg 3"):
        engine_for(url)
