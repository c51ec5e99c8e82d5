"""Rate limits on codes hold across processes: in the shared database, or in Redis when configured."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from gateway import create_app
from gateway.auth.ratelimit import DatabaseLimiter, Limit, RedisLimiter
from gateway.core.db import db
from gateway.core.models import RateCounter
from gateway.core.problems import Problem
from tests.conftest import app_config, init_keys
from tests.factories import (
    PortalVisitor,
    create_consent_request,
    last_code,
    make_app_client,
    token_for,
)

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _process(database_url: str, tmp_path: Path, name: str, **config: Any) -> Flask:
    """One gateway process; several on one database stand in for workers behind a load balancer."""
    application = create_app(app_config(database_url, tmp_path / name, **config))
    application.instance_path = str(tmp_path / name / "instance")
    init_keys(application)
    return application


def test_code_sends_per_contact_are_limited_across_processes(database_url: str, tmp_path: Path) -> None:
    first = _process(database_url, tmp_path, "p1")
    second = _process(database_url, tmp_path, "p2")
    with freeze_time(START) as frozen:
        client = first.test_client()
        request_id = create_consent_request(client, token_for(client, make_app_client(first)))["id"]
        browsers = [PortalVisitor(first), PortalVisitor(second)]
        for attempt in range(5):
            assert browsers[attempt % 2].send_code(request_id).status_code == 303
        refused = browsers[1].send_code(request_id)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert "Too many attempts" in refused.get_data(as_text=True)
        # The page leads back to the request, where the person tries again later.
        assert f'id="back" href="/consent/{request_id}"' in refused.get_data(as_text=True)
        # A fresh browser (new cookie, same person) does not reset the count.
        assert PortalVisitor(first).send_code(request_id).status_code == 429
        frozen.tick(timedelta(hours=1))
        assert browsers[0].send_code(request_id).status_code == 303
    for application in (first, second):
        with application.app_context():
            db.engine.dispose()


def _from(application: Flask, address: str) -> FlaskClient:
    browser = application.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_code_sends_per_ip_are_limited(database_url: str, tmp_path: Path) -> None:
    application = _process(database_url, tmp_path, "p1", OTP_SEND_PER_IP=3)
    client = application.test_client()
    token = token_for(client, make_app_client(application))
    statuses = []
    for n in range(4):
        request_id = create_consent_request(client, token, contact=f"person{n}@example.com")["id"]
        visitor = PortalVisitor(application, _from(application, "203.0.113.7"))
        statuses.append(visitor.send_code(request_id).status_code)
    assert statuses == [303, 303, 303, 429]
    # Another address is not affected.
    other = PortalVisitor(application, _from(application, "198.51.100.1"))
    assert other.send_code(request_id).status_code == 303
    with application.app_context():
        db.engine.dispose()


def test_code_checks_per_ip_are_limited(database_url: str, tmp_path: Path) -> None:
    application = _process(database_url, tmp_path, "p1", OTP_VERIFY_PER_IP=3)
    client = application.test_client()
    request_id = create_consent_request(client, token_for(client, make_app_client(application)))["id"]
    visitor = PortalVisitor(application)
    visitor.send_code(request_id)
    for _ in range(3):
        assert visitor.verify(request_id, "000000").status_code in (400, 303)
    visitor.send_code(request_id)
    # Even the right code is refused once this address has used up its checks.
    assert visitor.verify(request_id, last_code(application)).status_code == 429
    with application.app_context():
        db.engine.dispose()


def test_database_counts_are_exact_under_concurrency(app: Flask) -> None:
    limit = Limit("test-concurrency", 1000, 3600)
    now = datetime.now(UTC)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(10):
                with app.app_context(), db.unit_of_work() as session:
                    DatabaseLimiter().hit(session, limit, "one-key", now)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context(), db.unit_of_work() as session:
        assert DatabaseLimiter().hit(session, limit, "one-key", now).count == 81


def test_old_windows_are_dropped(app: Flask) -> None:
    limit = Limit("test-prune", 2, 60)
    with app.app_context(), db.unit_of_work() as session:
        limiter = DatabaseLimiter()
        assert limiter.hit(session, limit, "k", START).allowed
        assert limiter.hit(session, limit, "k", START).allowed
        third = limiter.hit(session, limit, "k", START + timedelta(seconds=30))
        assert not third.allowed
        assert third.retry_after == 30
        assert limiter.hit(session, limit, "k", START + timedelta(seconds=61)).count == 1
        rows = list(session.scalars(select(RateCounter)))
        assert len(rows) == 1  # the old window is gone
        assert "k" not in rows[0].key  # subjects are hashed in the key


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_counts_are_shared(app: Flask, redis_url: str) -> None:
    limit = Limit("test-redis", 3, 3600)
    one, two = RedisLimiter(redis_url), RedisLimiter(redis_url)
    with app.app_context():
        verdicts = [limiter.hit(db.session, limit, "alice", START) for limiter in (one, two, one, two)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after == 3600
    with app.app_context():
        assert one.hit(db.session, limit, "alice", START + timedelta(hours=1)).count == 1


def test_the_portal_uses_redis_when_configured(database_url: str, tmp_path: Path, redis_url: str) -> None:
    first = _process(database_url, tmp_path, "p1", REDIS_URL=redis_url, OTP_SEND_PER_CONTACT=2)
    second = _process(database_url, tmp_path, "p2", REDIS_URL=redis_url, OTP_SEND_PER_CONTACT=2)
    client = first.test_client()
    request_id = create_consent_request(client, token_for(client, make_app_client(first)))["id"]
    assert PortalVisitor(first).send_code(request_id).status_code == 303
    assert PortalVisitor(second).send_code(request_id).status_code == 303
    assert PortalVisitor(first).send_code(request_id).status_code == 429
    with first.app_context():
        assert list(db.session.scalars(select(RateCounter))) == []  # counted in Redis, not the database
    for application in (first, second):
        with application.app_context():
            db.engine.dispose()


def test_an_unreachable_redis_fails_closed(app: Flask) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0")
    with app.app_context(), pytest.raises(Problem) as raised:
        limiter.hit(db.session, Limit("x", 1, 60), "k", START)
    assert raised.value.status == 503
