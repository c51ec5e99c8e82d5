"""Statements on the hot path, compiled once per database and run on the request's own connection.

SQLAlchemy spends 40-70 µs around every execution (execution context, events, result machinery)
for statements that run in 5-15 µs; a decision runs four or five. A :class:`Prepared` statement is
compiled once per dialect, with its parameters' and columns' type processors looked up once, and
then runs on the DBAPI cursor of the connection the session already holds: same transaction, same
types, same SQL. What it does not skip:

- SQLite's deferred ``BEGIN IMMEDIATE`` (see :mod:`gateway.core.db`): a statement that is not marked
  standalone begins the write transaction first, exactly as through SQLAlchemy;
- error handling: a driver error is raised as SQLAlchemy's wrapped exception (so the request
  boundary's ``SQLAlchemyError`` handling answers 503), and a lost connection is run again through
  SQLAlchemy, which then invalidates the pool as it does for any statement that finds the database gone.

Only for statements with plain parameters (no expanding ``IN`` lists) whose rows are read by name.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from gateway.core.db import begin_pending, is_standalone

__all__ = ["Prepared"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]  # for a parameter the caller leaves out: the statement's own value
    positional: bool
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    row: Any  # a namedtuple class over the result's columns, or None for a statement without rows


class Prepared:
    """One statement, compiled per dialect on first use and run with :meth:`rows` or :meth:`run`."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._standalone = is_standalone(statement)
        self._by_dialect: dict[str, _Compiled] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row, each with the columns as attributes (processed like SQLAlchemy's rows)."""
        compiled = self._compiled(connection.dialect)
        fetched = self._execute(connection, compiled, params)
        results = compiled.results
        return [compiled.row(*(value if process is None else process(value)
                               for value, process in zip(raw, results, strict=True))) for raw in fetched]

    def run(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """Run a statement that returns nothing."""
        self._execute(connection, self._compiled(connection.dialect), params)

    def _execute(self, connection: Connection, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        given = (_given(params, name, default) for name, default in zip(compiled.names, compiled.defaults, strict=True))
        values = [value if process is None else process(value)
                  for value, process in zip(given, compiled.binds, strict=True)]
        arguments: Any = values if compiled.positional else dict(zip(compiled.names, values, strict=True))
        proxied = connection.connection
        dialect = connection.dialect
        driver_error = dialect.loaded_dbapi.Error
        cursor = None
        try:
            if not self._standalone:
                begin_pending(connection)
            cursor = proxied.cursor()
            cursor.execute(compiled.sql, arguments)
            return list(cursor.fetchall()) if compiled.row is not None else []
        except driver_error as error:
            if dialect.is_disconnect(error, proxied.dbapi_connection, cursor):
                # SQLAlchemy's own handling of a lost connection (invalidating it and every pooled
                # connection older than the failure) happens when it meets the failure itself.
                connection.execute(self.statement, dict(params))
            raise exc.DBAPIError.instance(compiled.sql, arguments, error, driver_error, dialect=dialect) from error
        finally:
            if cursor is not None:
                cursor.close()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return compiled


class _Missing:
    pass


_MISSING = _Missing()


def _given(params: Mapping[str, Any], name: str, default: Any) -> Any:
    if default is _MISSING:
        return params[name]
    return params.get(name, default)


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup) if positional else tuple(compiled.binds)
    if any(compiled.binds[name].expanding for name in names):
        raise ValueError("a prepared statement takes plain parameters, not expanding lists")
    # A literal in the statement (``"system"`` in a CASE) is a parameter with its value; one the
    # caller must give has none, and leaving it out is a KeyError like any missing parameter.
    defaults = tuple(_MISSING if compiled.binds[name].required else compiled.binds[name].effective_value
                     for name in names)
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    # A SELECT's columns, or what an INSERT/UPDATE … RETURNING returns (none for a plain INSERT).
    columns = list(getattr(statement, "exported_columns", ()))
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    row = namedtuple("Row", [column.key for column in columns]) if columns else None
    return _Compiled(sql=compiled.string, names=names, defaults=defaults, positional=positional, binds=binds,
                     results=results, row=row)
