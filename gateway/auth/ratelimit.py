"""Fixed-window rate limits that hold across every gateway process.

Counters live in the shared database (``rate_counters``, an atomic upsert-increment on SQLite and
PostgreSQL) or, when ``CONSENT_GATEWAY_REDIS_URL`` is set, in Redis. Nothing is counted in process
memory, because several gunicorn workers on several machines must see one count.

The database limiter counts inside the caller's transaction: callers that refuse must still commit
(return the refusal rather than raise), which the portal does, so a refused attempt is counted too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.core.models import RateCounter
from gateway.core.problems import Problem

_EXT = "consent_gateway.ratelimit"


@dataclass(frozen=True)
class Limit:
    name: str
    max_hits: int
    window_seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window resets (0 when allowed)


class Limiter(Protocol):
    def hit(self, session: Session, limit: Limit, subject: str, now: datetime) -> Verdict:
        """Count one hit for ``subject`` (an IP, a contact hash, …) and say whether it is allowed."""
        ...


def _window(limit: Limit, now: datetime) -> tuple[int, int]:
    start = math.floor(now.timestamp()) // limit.window_seconds * limit.window_seconds
    return start, start + limit.window_seconds - math.floor(now.timestamp())


def _key(limit: Limit, subject: str) -> str:
    # Hashed so that no address or contact appears in the counter table or in Redis.
    return f"{limit.name}:{hashlib.sha256(subject.encode()).hexdigest()[:40]}"


def _verdict(limit: Limit, count: int, remaining_seconds: int) -> Verdict:
    allowed = count <= limit.max_hits
    return Verdict(allowed=allowed, count=count, retry_after=0 if allowed else max(remaining_seconds, 1))


class DatabaseLimiter:
    def hit(self, session: Session, limit: Limit, subject: str, now: datetime) -> Verdict:
        start, remaining = _window(limit, now)
        key = _key(limit, subject)
        dialect = session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(RateCounter)
            .values(key=key, window_start=start, count=1)
            .on_conflict_do_update(index_elements=["key", "window_start"],
                                   set_={"count": RateCounter.count + 1})
            .returning(RateCounter.count)
        )
        # One statement: concurrent hits serialise on the row, none is lost or double-counted.
        count = int(session.execute(statement).scalar_one())
        # Old windows of this key are useless; dropping them here keeps the table bounded.
        session.execute(delete(RateCounter).where(RateCounter.key == key, RateCounter.window_start < start))
        return _verdict(limit, count, remaining)


class RedisLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = redis.RedisError

    def hit(self, session: Session, limit: Limit, subject: str, now: datetime) -> Verdict:
        start, remaining = _window(limit, now)
        key = f"consent-gateway:rl:{_key(limit, subject)}:{start}"
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, limit.window_seconds + 60)
            count, _ = pipe.execute()
        except self._errors as exc:
            # Fail closed: without a shared count, a limit cannot be enforced at all.
            raise Problem(503, "rate_limiter_unavailable", "the rate limiter cannot be reached",
                          headers={"Retry-After": "5"}) from exc
        return _verdict(limit, int(count), remaining)


def limiter_for(app: Flask) -> Limiter:
    url = app.config.get("REDIS_URL") or ""
    return RedisLimiter(url) if url else DatabaseLimiter()


def limiter() -> Limiter:
    found = current_app.extensions.get(_EXT)
    if found is None:
        found = limiter_for(current_app)
        current_app.extensions[_EXT] = found
    result: Limiter = found
    return result
