"""Witnessed checkpoints: the gateway submits each new checkpoint to its witnesses (c2sp.org/tlog-witness)
with a consistency proof, resyncs on 409, stores and serves the cosignatures and puts them into bundles; a
dead or slow witness holds up no append."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import delete, func, select

from audit import queries
from audit.models import Entry, WitnessCosignature
from audit.signed_note import cosignatures, parse_cosigner_vkey
from audit.verify import verify_bundle
from gateway.auditing import witnesses
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.factories import bearer, make_app_client, token_for
from tests.gateway.auditing.anchors import gateway_keys
from tests.gateway.auditing.witness_server import Witness

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
ORIGIN = "gateway.test/audit/2026-11"


def _append(app: Flask, n: int, now: datetime = NOW) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, detail={"i": i})


def _configure(app: Flask, *running: Witness, timeout: float = 2.0) -> None:
    app.config["AUDIT_WITNESSES"] = [{"url": w.url, "vkey": w.vkey} for w in running]
    app.config["AUDIT_WITNESS_TIMEOUT"] = timeout


@pytest.fixture
def pair(app: Flask) -> Iterator[list[Witness]]:
    started = [Witness(gateway_keys(app)[0], "gateway.test/audit/", name=f"witness.test/w{i}").start()
               for i in range(2)]
    _configure(app, *started)
    yield started
    witnesses.stop(app)
    for witness in started:
        witness.stop()


def _newest(app: Flask) -> int:
    with app.app_context():
        checkpoint = queries.latest_checkpoint(db.session, "2026-11")
        assert checkpoint is not None
        return checkpoint.size


def _stored(app: Flask) -> list[tuple[int, str]]:
    with app.app_context():
        return [(row.size, row.witness) for row in db.session.scalars(
            select(WitnessCosignature).order_by(WitnessCosignature.size, WitnessCosignature.witness))]


def test_each_new_checkpoint_is_cosigned_from_the_last_size(
    app: Flask, client: FlaskClient, pair: list[Witness], tmp_path: Path
) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 25)  # 26 leaves with shard.opened, one batch, one checkpoint
    first = _newest(app)
    with app.app_context():
        assert witnesses.collect(app, NOW) == 2
    assert [w.latest[ORIGIN][0] for w in pair] == [first, first]
    for _ in range(3):
        _append(app, 10)
    second = _newest(app)
    assert second > first
    with app.app_context():
        assert witnesses.collect(app, NOW) == 2
    # Accepted with the consistency proof from the first size (the witness checks it before it cosigns).
    assert [w.latest[ORIGIN][0] for w in pair] == [second, second]
    assert all(w.answers == [200, 200] for w in pair)
    assert [size for size, _ in _stored(app)] == [first, first, second, second]

    token = token_for(client, make_app_client(app, "audit:read"))
    latest = client.get("/v1/audit/checkpoints/latest?shard=2026-11", headers=bearer(token)).get_json()
    assert latest["size"] == second
    assert {c.name for c in cosignatures(latest["note"], [parse_cosigner_vkey(w.vkey) for w in pair])} == {
        "witness.test/w0", "witness.test/w1"}

    # The export seals a new checkpoint and asks the witnesses once more before it writes the bundle.
    bundle = tmp_path / "bundle.zip"
    with freeze_time(datetime(2026, 11, 15, tzinfo=UTC)):
        result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", "2026-11-01T00:00:00Z",
                                                     "--until", "2026-12-01T00:00:00Z", "-o", str(bundle)])
    assert result.exit_code == 0, result.output
    pins = [a for w in pair for a in ("--witness", w.vkey)]
    result = app.test_cli_runner().invoke(main, ["audit", "verify", str(bundle), *pins, "--min-witnesses", "2",
                                                 "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "trust: checked against your witnesses' cosignatures" in result.output
    report = verify_bundle(bundle, witnesses=[w.vkey for w in pair], min_witnesses=2, jobs=1)
    assert (report.ok, report.keys_source, report.keys) == (True, "witnesses", gateway_keys(app))


def test_a_conflict_is_resolved_from_the_size_the_witness_names(app: Flask, pair: list[Witness]) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 25)
    with app.app_context():
        witnesses.collect(app, NOW)
        # Our record of what the witnesses cosigned is lost: we say "old 0", they answer 409 "20".
        with db.unit_of_work() as session:
            session.execute(delete(WitnessCosignature))
    _append(app, 10)
    with app.app_context():
        assert witnesses.collect(app, NOW) == 2
    assert pair[0].answers == [200, 409, 200]
    # A witness that lost its state: we say "old <what it cosigned>", it answers 409 "0", and cosigns anew.
    pair[1].latest.clear()
    _append(app, 10)
    with app.app_context():
        assert witnesses.collect(app, NOW) == 2
    assert pair[1].answers == [200, 409, 200, 409, 200]
    assert [w.latest[ORIGIN][0] for w in pair] == [_newest(app)] * 2


def test_a_dead_or_slow_witness_holds_up_no_append(app: Flask, pair: list[Witness]) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 2
    slow, dead = pair
    slow.delay = 3.0
    dead.stop()
    _configure(app, slow, dead, timeout=0.5)
    app.config["AUDIT_WITNESS_SECONDS"] = 0.05
    witnesses.start(app)  # the collector thread a serving process runs, asking both without pause
    durations = []
    for _ in range(40):
        started = time.perf_counter()
        _append(app, 1)  # committed and sequenced (a checkpoint every 2 entries) on this thread
        durations.append(time.perf_counter() - started)
    witnesses.stop(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Entry)) == 41
    assert max(durations) < 0.4, durations
    assert _stored(app) == []
    # A pass over both gives up on each at its first failure: bounded by one timeout apiece.
    started = time.perf_counter()
    with app.app_context():
        assert witnesses.collect(app, NOW) == 0
    assert time.perf_counter() - started < 1.8
