"""Engine and the per-request session.

The session lives for one request and is committed at the request boundary (``after_request``),
so a state change and its audit entry either both land or neither does. Services never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "db", "engine_for"]


def engine_for(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emitting BEGIN IMMEDIATE ourselves
        # takes the write lock up front, so two writers queue on busy_timeout instead of one of
        # them failing with "database is locked" at commit.
        # Read-only sessions (long exports) begin deferred so they never hold the write lock.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(
            "BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE"))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # A dead database must turn into a fast 503, not a request hanging on connect.
    return create_engine(url, connect_args={"connect_timeout": 3}, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy own BEGIN (see the "begin" listener) instead of pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Flask extension: one engine per app, one session per request (in ``g``)."""

    def init_app(self, app: Flask) -> None:
        engine = engine_for(app.config["DATABASE_URL"])
        app.extensions["consent_gateway.db"] = (engine, sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(self._close)

    @property
    def engine(self) -> Engine:
        engine: Engine = current_app.extensions["consent_gateway.db"][0]
        return engine

    @staticmethod
    def session_factory(app: Flask) -> sessionmaker[Session]:
        """The app's own sessions (request sessions and units of work), e.g. to listen to their events."""
        factory: sessionmaker[Session] = app.extensions["consent_gateway.db"][1]
        return factory

    def new_session(self) -> Session:
        return self.session_factory(current_app)()

    def read_session(self) -> Session:
        """A session for long reads: never takes SQLite's write lock; must not write."""
        return Session(bind=self.engine.execution_options(read_only=True), expire_on_commit=False)

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            g.db_session = self.new_session()
        session: Session = g.db_session
        return session

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session committed on success, for CLI commands and background work."""
        session = self.new_session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            # Anything not committed by the request boundary is thrown away on purpose.
            session.rollback()
            session.close()


db = Database()
