"""An auditor's view of a real gateway: pinned keys and kept checkpoints against a forged bundle, and the
ranges auditors ask for (three years, from before the log began, to the end of a month not over yet), over
HTTP and at the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time

from audit.verify import Report, verify_bundle
from gateway.auditing.trail import SYSTEM, AuditJournal
from gateway.cli import main
from gateway.core.db import db
from tests.audit.synthetic import Export, Signer, make_log, write
from tests.factories import bearer, make_app_client, token_for

NOW = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)


def _append(app: Flask, n: int, now: datetime) -> None:
    with app.app_context(), db.unit_of_work() as session:
        for i in range(n):
            AuditJournal(session, now).record("test.event", SYSTEM, detail={"i": i})


def _cli(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(main, list(args))
    return result.exit_code, result.output


def _keys(app: Flask) -> list[str]:
    code, output = _cli(app, "audit", "keys", "--json")
    assert code == 0, output
    return list(json.loads(output[output.index("{"):])["vkeys"])


def _pins(keys: list[str]) -> list[str]:
    return [arg for key in keys for arg in ("--key", key)]


def _cli_export(app: Flask, path: Path, since: str, until: str) -> Path:
    with freeze_time(NOW):
        code, output = _cli(app, "audit", "export", "--since", since, "--until", until, "-o", str(path))
    assert code == 0, output
    return path


def _http_export(app: Flask, client: FlaskClient, path: Path, since: str, until: str) -> Path:
    with freeze_time(NOW):
        token = token_for(client, make_app_client(app, "audit:read audit:export"))
        response = client.get(f"/v1/audit/export?since={since}&until={until}", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    path.write_bytes(response.get_data())
    return path


def _statuses(report: Report) -> dict[str, str]:
    return {m.month: m.status for m in report.months}


def test_audit_keys_prints_what_the_api_serves(app: Flask, client: FlaskClient) -> None:
    token = token_for(client, make_app_client(app, "audit:read"))
    served = client.get("/v1/audit/keys", headers=bearer(token)).get_json()["vkeys"]
    assert _keys(app) == served
    assert served[0].startswith("gateway.test/audit+")


def test_a_forged_bundle_fails_against_the_real_gateway(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    _append(app, 30, NOW)
    keys = _keys(app)
    with freeze_time(NOW):
        token = token_for(client, make_app_client(app, "audit:read"))
        latest = client.get("/v1/audit/checkpoints/latest?shard=2026-11", headers=bearer(token)).get_json()
    note = tmp_path / "2026-11.note"
    note.write_text(latest["note"], encoding="utf-8")
    month = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")

    real = _cli_export(app, tmp_path / "real.zip", *month)
    assert _cli(app, "audit", "verify", str(real), *_pins(keys), "--jobs", "1")[0] == 0
    assert _cli(app, "audit", "verify", str(real), "--trusted-checkpoint", str(note), "--jobs", "1")[0] == 0
    assert _cli(app, "audit", "verify", str(real), "--jobs", "1")[0] == 3

    # Someone makes up November: their own key (under the gateway's key name), entries and checkpoints.
    forger = Signer()
    forged = write(tmp_path / "forged.zip", [Export(make_log(forger, {"2026-11": 40})["2026-11"])],
                   vkeys=[forger.vkey], since="2026-11-01T00:00:00+00:00", until="2026-12-01T00:00:00+00:00",
                   generated_at="2026-11-15T09:00:00+00:00")
    code, output = _cli(app, "audit", "verify", str(forged), "--jobs", "1")
    assert code == 3, output
    assert "SELF-CONSISTENT BUT UNTRUSTED" in output
    assert _cli(app, "audit", "verify", str(forged), "--allow-untrusted", "--jobs", "1")[0] == 0
    code, output = _cli(app, "audit", "verify", str(forged), *_pins(keys), "--jobs", "1")
    assert code == 1, output
    assert "unverified_checkpoint" in output
    code, output = _cli(app, "audit", "verify", str(forged), "--trusted-checkpoint", str(note), "--jobs", "1")
    assert code == 1, output
    assert "trusted checkpoint 1" in output


def test_three_years_export_over_http_and_cli(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    for number in range(36):  # 2023-12 .. 2026-11
        year, month = 2023 + (11 + number) // 12, (11 + number) % 12 + 1
        _append(app, 2, datetime(year, month, 15, tzinfo=UTC))
    since, until = "2023-12-01T00:00:00Z", "2026-12-01T00:00:00Z"  # 1096 days
    keys = _keys(app)
    for bundle in (_http_export(app, client, tmp_path / "http.zip", since, until),
                   _cli_export(app, tmp_path / "cli.zip", since, until)):
        report = verify_bundle(bundle, keys=keys, jobs=1)
        assert report.ok, report.render()
        assert len(report.shards) == 36
        assert set(_statuses(report).values()) == {"exported"}
        assert _cli(app, "audit", "verify", str(bundle), *_pins(keys), "--jobs", "1")[0] == 0


@pytest.mark.parametrize(("since", "until"), [
    ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
    # Years before 1000 and 100: month names keep four digits, so months still sort as they fall.
    ("0999-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("0001-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("2026-10-01T00:00:00Z", "2026-11-30T00:00:00Z"),  # to the last day of the current month
    ("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z"),
])
def test_a_range_into_the_future_verifies_clean(
    app: Flask, client: FlaskClient, tmp_path: Path, since: str, until: str
) -> None:
    app.config["AUDIT_CHECKPOINT_EVERY"] = 5
    _append(app, 12, datetime(2026, 10, 20, tzinfo=UTC))
    _append(app, 7, datetime(2026, 11, 2, tzinfo=UTC))
    keys = _keys(app)
    for bundle in (_http_export(app, client, tmp_path / "http.zip", since, until),
                   _cli_export(app, tmp_path / "cli.zip", since, until)):
        report = verify_bundle(bundle, keys=keys, jobs=1)
        assert report.ok, report.render()
        statuses = _statuses(report)
        assert (statuses["2026-10"], statuses["2026-11"]) == ("exported", "exported")
        assert {s for m, s in statuses.items() if m < "2026-10"} <= {"before_log"}
        assert {s for m, s in statuses.items() if m > "2026-11"} <= {"after_generation"}
        code, output = _cli(app, "audit", "verify", str(bundle), *_pins(keys), "--jobs", "1")
        assert code == 0, output


@pytest.mark.parametrize("query", [
    "since=0001-01-01T00:00:00%2B01:00&until=2027-01-01T00:00:00Z",  # year 0 once in UTC
    "since=2026-01-01T00:00:00Z&until=9999-12-31T23:59:59-01:00",  # year 10000 once in UTC
])
def test_a_time_outside_the_calendar_once_in_utc_is_a_bad_parameter(
    app: Flask, client: FlaskClient, tmp_path: Path, query: str
) -> None:
    token = token_for(client, make_app_client(app, "audit:read audit:export"))
    for path in ("/v1/audit/export", "/v1/audit/entries"):
        response = client.get(f"{path}?{query}", headers=bearer(token))
        assert response.status_code == 400, (path, response.get_data(as_text=True))
        assert response.get_json()["code"] == "invalid_parameter"
    code, output = _cli(app, "audit", "export", "--since", "0001-01-01T00:00:00+01:00", "--until",
                        "2027-01-01T00:00:00Z", "-o", str(tmp_path / "x.zip"))
    assert code == 2, output
    assert "Traceback" not in output


def test_a_range_before_the_log_began_is_shown_so(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    _append(app, 3, datetime(2026, 10, 20, tzinfo=UTC))
    keys = _keys(app)
    for bundle in (_http_export(app, client, tmp_path / "http.zip", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"),
                   _cli_export(app, tmp_path / "cli.zip", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z")):
        report = verify_bundle(bundle, keys=keys, jobs=1)
        assert report.ok, report.render()
        assert set(_statuses(report).values()) == {"before_log"}
        # The evidence: the log's first shard, from entry 0 (which commits to no earlier shard).
        assert [(s.shard, s.first_index, s.starts_log) for s in report.shards] == [("2026-10", 0, True)]


def test_an_audit_cycle_with_kept_checkpoints(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    """Audit, keep the checkpoints the trusted bundle verified, audit again from the start of that month."""
    app.config["AUDIT_CHECKPOINT_EVERY"] = 10
    kept = tmp_path / "kept"
    _append(app, 25, datetime(2026, 11, 3, tzinfo=UTC))
    keys = _keys(app)
    first = _http_export(app, client, tmp_path / "first.zip", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    code, output = _cli(app, "audit", "verify", str(first), *_pins(keys), "--save-checkpoints", str(kept),
                        "--jobs", "1")
    assert code == 0, output
    assert [p.name for p in kept.iterdir()] == ["2026-11.note"]
    _append(app, 30, datetime(2026, 11, 10, tzinfo=UTC))
    second = _http_export(app, client, tmp_path / "second.zip", "2026-11-01T00:00:00Z", "2027-01-01T00:00:00Z")
    code, output = _cli(app, "audit", "verify", str(second), "--trusted-checkpoint", str(kept / "2026-11.note"),
                        "--jobs", "1")
    assert code == 0, output
    assert "trust: checked against the checkpoint you kept" in output


@pytest.mark.parametrize(("since", "until"), [
    ("2026-10-20T00:00:00Z", "2026-10-25T00:00:00Z"),  # no entry of the month lies in the range
    ("2026-10-20T00:00:00Z", "2026-11-01T00:00:00Z"),
])
def test_a_quiet_stretch_of_a_month_is_accounted_for(
    app: Flask, client: FlaskClient, tmp_path: Path, since: str, until: str
) -> None:
    _append(app, 4, datetime(2026, 10, 5, tzinfo=UTC))
    _append(app, 2, datetime(2026, 11, 2, tzinfo=UTC))
    keys = _keys(app)
    for bundle in (_http_export(app, client, tmp_path / "http.zip", since, until),
                   _cli_export(app, tmp_path / "cli.zip", since, until)):
        report = verify_bundle(bundle, keys=keys, jobs=1)
        assert report.ok, report.render()
        assert _statuses(report) == {"2026-10": "exported"}
