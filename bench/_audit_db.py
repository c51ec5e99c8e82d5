"""Shared parts of the audit benchmarks: throw-away databases (loopback only), the app, realistic entries."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask

from gateway import create_app
from gateway.core import migrate
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.keys.keyring import key_store

MASTER_KEY = base64.b64encode(b"b" * 32).decode()
ISSUER = "https://gateway.bench"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOOPBACK = {"127.0.0.1", "::1", "localhost", None, ""}

# A decision entry as the gateway queues it (JCS, members sorted, no seq/shard yet): ~430 bytes.
TEMPLATE = (
    '{{"action":"decision.allowed","actor":{{"id":"cli_{client}","type":"client"}},'
    '"algorithm":"110100000000000{algo}","client_id":"cli_{client}","consent_id":"cns_{consent}",'
    '"decision_id":"dec_{decision}","media":{{"source":"{digest}"}},"operation":"face_swap",'
    '"outcome":"allow","request_id":"req_{decision}","subject":"sub_{consent}","ts":"{ts}"}}'
)


def queued_body(i: int, ts: str) -> bytes:
    """The JCS bytes ``audit.log.append`` would queue for decision number ``i`` at ``ts`` (RFC 3339)."""
    digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return TEMPLATE.format(client=digest[:10], algo=i % 10, consent=digest[10:26], decision=digest[26:42],
                           digest=digest, ts=ts).encode()


def decision_fields(i: int) -> dict[str, Any]:
    """The same decision as keyword fields of ``gateway.auditing.trail.record``."""
    digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return {"client_id": f"cli_{digest[:10]}", "consent_id": f"cns_{digest[10:26]}",
            "decision_id": f"dec_{digest[26:42]}", "subject": f"sub_{digest[10:26]}",
            "algorithm": f"110100000000000{i % 10}", "operation": "face_swap", "outcome": "allow",
            "media": {"source": digest}, "request_id": f"req_{digest[26:42]}"}


def check_template() -> None:
    import json

    sample = queued_body(7, "2025-01-01T00:00:00.000000Z")
    if rfc8785.dumps(json.loads(sample)) != sample:
        raise SystemExit("benchmark entries are not canonical JCS")


def loopback_only(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.host not in LOOPBACK:
        raise SystemExit(f"refusing to benchmark against {parsed.host}: loopback databases only")


@contextmanager
def temp_database(backend: str, pg_admin: str, directory: Path | None = None) -> Iterator[str]:
    """A fresh, migrated database, dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite3"
            migrate.upgrade(url)
            yield url
        return
    loopback_only(pg_admin)
    name = f"cg_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_app(url: str, **config: Any) -> Flask:
    app = create_app({"DATABASE_URL": url, "MASTER_KEY": MASTER_KEY, "ISSUER": ISSUER,
                      "SECRET_KEY": "bench-secret", "LOG_LEVEL": "WARNING", **config})
    with app.app_context(), db.unit_of_work() as session:
        if key_store().active(session) is None:
            key_store().create(session, utcnow())
    return app


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs (nproc), {memory:.1f} GiB RAM, load average at start {load}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
