"""What one statement on a decision's path costs through SQLAlchemy, and what the database's own share is.

    python bench/statement_cost.py [--backend sqlite|postgresql|both] [--repeat 3000]

The prebuilt single-consent read of ``consent.enforcement`` (the policy's columns of one consent by id),
on one open connection, one at a time: through ``Connection.execute`` (how the gateway runs it), as
driver SQL through ``exec_driver_sql``, and straight on the DBAPI cursor (no type conversions, no error
mapping: the floor). Best of five rounds, microseconds per execution.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from _harness import database, gateway_app
from sqlalchemy import bindparam, select

from consent.enforcement import FACTS
from gateway.core.db import db
from tests.factories import make_app_client, make_consent


def _best(fn: Callable[[], Any], repeat: int) -> float:
    for _ in range(100):
        fn()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat // 5):
            fn()
        rounds.append((time.perf_counter() - started) / (repeat // 5) * 1e6)
    return round(min(rounds), 1)


def measure(backend: str, pg_url: str, repeat: int) -> dict[str, Any]:
    with database(backend, pg_url) as url:
        app = gateway_app(url, "http://127.0.0.1:1")
        consent_id = make_consent(app, make_app_client(app).client_id)
        statement = select(*FACTS).where(FACTS[0] == bindparam("consent_id"))
        with app.app_context(), db.engine.connect() as conn:
            sql = str(statement.compile(dialect=conn.dialect))
            params: Any = (consent_id,) if backend == "sqlite" else {"consent_id": consent_id}
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()

            def on_cursor() -> Any:
                cursor.execute(sql, params)
                return cursor.fetchall()

            return {
                "backend": backend,
                "sqlalchemy_execute_us": _best(lambda: conn.execute(statement, {"consent_id": consent_id}).all(),
                                               repeat),
                "exec_driver_sql_us": _best(lambda: conn.exec_driver_sql(sql, params).all(), repeat),
                "dbapi_cursor_us": _best(on_cursor, repeat),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=3000)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"load average at the start: {os.getloadavg()}")
    print("| database | SQLAlchemy Connection.execute µs | exec_driver_sql µs | DBAPI cursor µs |")
    print("|---|---|---|---|")
    for backend in backends:
        r = measure(backend, args.pg_url, args.repeat)
        print(f"| {backend} | {r['sqlalchemy_execute_us']} | {r['exec_driver_sql_us']} | {r['dbapi_cursor_us']} |")


if __name__ == "__main__":
    main()
