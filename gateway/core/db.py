"""Engine and the per-request session.

The session lives for one request and is committed at the request boundary (``after_request``),
so a state change and its audit entry either both land or neither does. Services never commit.

On SQLite a transaction that may write takes the write lock up front (``BEGIN IMMEDIATE``), so two
writers queue instead of one failing at commit. The BEGIN is sent with the transaction's first
statement, not before it, so that reads marked :func:`standalone` run first, each its own snapshot,
without the lock: a request that reads its token and the facts of a decision holds the write lock only
for its writes. Whatever such a read saw must be re-checked by the write that relies on it (the
conditional UPDATE of a decision does that).

PostgreSQL transactions begin the same way: the connection runs in autocommit mode and ``BEGIN`` is
sent before the first statement that is not a standalone read, so a request that only reads (its token,
a consent) sends neither ``BEGIN`` nor ``COMMIT``: two round trips of four. What a read sees does not
change: under READ COMMITTED every statement already takes its own snapshot, in a transaction or not.

Writers to one SQLite file queue on an exclusive ``flock`` of a file beside it before BEGIN IMMEDIATE,
and let go once their transaction has ended. SQLite's own busy handler polls, sleeping 1, 2, 5, 10 …
up to 100 ms between tries, so under load the lock sat free while every waiter slept, and a process
that lost a few tries waited for hundreds of milliseconds; a waiter on ``flock`` is woken by the kernel
as soon as the lock is free, in whichever process, and the kernel lets go of it if the holder dies
(kill -9). Writers that do not queue there (another program) still meet SQLite's own lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TypeVar

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

__all__ = ["Database", "begin_pending", "db", "engine_for", "is_standalone", "standalone"]

# A pooled PostgreSQL connection that sat unused for longer than this is checked with one round trip
# before it is handed out; a connection in steady use is not (``pool_pre_ping`` would cost a round trip
# on every checkout). A connection that dies while in steady use (a database restart) fails the
# statement that finds out, whose request answers 503, and SQLAlchemy then drops every pooled
# connection older than the failure.
IDLE_PING_SECONDS = 10.0
_CHECKED_IN = "consent_gateway.checked_in"
_PENDING_BEGIN = "consent_gateway.pending_begin"
_STANDALONE = "consent_gateway_standalone_read"

E = TypeVar("E", bound=Executable)


def standalone(statement: E) -> E:
    """Mark a single read that needs no transaction: on SQLite it runs before the write lock is taken.

    For statements built once at import time (marking copies the statement).
    """
    return statement.execution_options(**{_STANDALONE: True})


# The same mark as execution options, for a read a domain function builds (``read_options=``).
STANDALONE_READ: Mapping[str, Any] = MappingProxyType({_STANDALONE: True})


def is_standalone(statement: Executable) -> bool:
    return bool(statement.get_execution_options().get(_STANDALONE))


def begin_pending(connection: Any) -> None:
    """Begin the deferred transaction now, if it is still pending: before the first statement that is
    not a standalone read, whether SQLAlchemy runs it or :mod:`gateway.core.prepared` does."""
    begin = connection.info.pop(_PENDING_BEGIN, None)
    if begin is None:
        return
    driver = connection.connection.driver_connection
    if isinstance(driver, _SQLiteConnection):
        driver.begin(begin)  # after its place in the writer queue
    else:
        # psycopg: the simple protocol, so BEGIN never takes a prepared-statement slot.
        driver.execute(begin, prepare=False).close()


def engine_for(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False,
                                                  "factory": _SQLiteConnection}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            writers = os.path.abspath(database) + "-writers"
            event.listen(engine, "connect", lambda dbapi_connection, _record: dbapi_connection.queue_writers(writers))
        # pysqlite's own transaction handling defers BEGIN; we emit BEGIN IMMEDIATE ourselves with the
        # first statement that is not a standalone read. Read-only sessions (long exports) begin
        # deferred so they never hold the write lock.
        _begin_when_needed(engine)
        return engine
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "psycopg":
        raise ValueError(f"the database is SQLite or PostgreSQL through psycopg 3 (postgresql+psycopg://…), "
                         f"not {parsed.drivername}")
    if "isolation_level" in kwargs:
        raise ValueError("transactions begin as gateway.core.db begins them; no other isolation level")
    pre_ping = kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # A dead database must turn into a fast 503, not a request hanging on connect.
    # BEGIN is ours to send (see the module docstring): in autocommit mode psycopg sends none itself,
    # and its commit() and rollback() still end the transaction we began (and do nothing otherwise).
    # Set as SQLAlchemy's isolation level, so that a pooled connection is always reset to it.
    engine = create_engine(url, connect_args={"connect_timeout": 3}, isolation_level="AUTOCOMMIT", **kwargs)
    _begin_when_needed(engine)
    if not pre_ping:
        event.listen(engine, "checkin", _checked_in)
        event.listen(engine, "checkout", _idle_ping(engine.dialect))
    return engine


def _begin_when_needed(engine: Engine) -> None:
    """A transaction's BEGIN waits for its first statement that is not a standalone read."""
    event.listen(engine, "begin", _begin_later)
    event.listen(engine, "before_cursor_execute", _begin_before)
    event.listen(engine, "commit", _forget_begin)
    event.listen(engine, "rollback", _forget_begin)


def _begin_later(conn: Any) -> None:
    if conn.dialect.name != "sqlite" or conn.get_execution_options().get("read_only"):
        conn.info[_PENDING_BEGIN] = "BEGIN"
    else:
        conn.info[_PENDING_BEGIN] = "BEGIN IMMEDIATE"


def _begin_before(conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any,
                  _executemany: bool) -> None:
    # A server-side cursor (a streamed read) lives in a transaction even when it only reads.
    options = context.execution_options if context is not None else {}
    if options.get(_STANDALONE) and not options.get("stream_results"):
        return
    begin_pending(conn)


def _forget_begin(conn: Any) -> None:
    # A transaction that ran nothing but standalone reads never began in the database: nothing to end.
    # (A connection lost mid-transaction has no state left to forget; the next one begins afresh.)
    if not conn.invalidated:
        conn.info.pop(_PENDING_BEGIN, None)


# Threads at the head of a writer queue: a thread that already holds it (one transaction nested in
# another's, on a second connection) does not queue behind itself; it meets SQLite's lock, as before.
_HOLDERS: set[int] = set()


class _SQLiteConnection(sqlite3.Connection):
    """A pysqlite connection that queues writers (see the module docstring) around its transactions."""

    _writers: str | None = None
    _fd: int | None = None
    _holder: int | None = None  # the thread that queued, while this connection holds the queue

    def queue_writers(self, path: str) -> None:
        self._writers = path

    def begin(self, statement: str) -> None:
        thread = threading.get_ident()
        if statement != "BEGIN" and self._writers is not None and thread not in _HOLDERS:
            if self._fd is None:
                self._fd = os.open(self._writers, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits without the GIL
            self._holder = thread
            _HOLDERS.add(thread)
        try:
            self.execute(statement)
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _let_go(self) -> None:
        if self._holder is not None:
            _HOLDERS.discard(self._holder)
            self._holder = None
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _idle_ping(dialect: Any) -> Any:
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_CHECKED_IN)
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return  # new, or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and hands out another (a new one if need be).
            raise exc.DisconnectionError("a pooled connection is dead") from error

    return ping_if_idle


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
        # One lookup through the ``g`` proxy, not three: this runs several times in every request.
        session: Session | None = g.get("db_session")
        if session is None:
            session = g.db_session = self.new_session()
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
