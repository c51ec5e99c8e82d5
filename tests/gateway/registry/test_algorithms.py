"""The algorithm white list: CLI and API, unique filing numbers, the upstream URL never public."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from gateway.cli import main
from tests.factories import App, audit_entries, bearer, make_app_client, token_for

ADD = ["algorithms", "add", "--name", "Swapper", "--filing-number", "网信算备110108000000001号",
       "--provider", "Example Co", "--product", "FaceApp", "--operations", "voice_clone,face_swap",
       "--upstream", "https://upstream.example/edit"]


def _json(output: str) -> Any:
    return json.loads(output[output.index("{"):])


def test_cli_adds_lists_and_suspends(app: Flask, runner: FlaskCliRunner) -> None:
    added = runner.invoke(main, [*ADD, "--json"])
    assert added.exit_code == 0, added.output
    row = _json(added.output)
    assert row["filing_number"] == "网信算备110108000000001号"
    assert row["operations"] == ["face_swap", "voice_clone"]  # catalogue order
    assert row["status"] == "active"
    assert row["upstream_url"] == "https://upstream.example/edit"

    listed = _json(runner.invoke(main, ["algorithms", "list", "--json"]).output)
    assert [a["filing_number"] for a in listed["algorithms"]] == [row["filing_number"]]

    suspended = runner.invoke(main, ["algorithms", "suspend", row["filing_number"], "--json"])
    assert suspended.exit_code == 0, suspended.output
    assert _json(suspended.output)["status"] == "suspended"
    human = runner.invoke(main, ["algorithms", "list"]).output
    assert "suspended" in human

    [registered] = audit_entries(app, "algorithm.registered")
    assert registered["algorithm"] == row["filing_number"]
    assert registered["actor"] == {"type": "admin", "id": "cli"}
    assert len(audit_entries(app, "algorithm.suspended")) == 1
    # Suspending again changes nothing and is not audited twice.
    assert runner.invoke(main, ["algorithms", "suspend", row["filing_number"]]).exit_code == 0
    assert len(audit_entries(app, "algorithm.suspended")) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"--operations": "face_melt"}, "unknown operation"),
    ({"--upstream": "ftp://upstream.example/"}, "http(s)"),
    ({"--upstream": "https://user:pw@upstream.example/"}, "credentials"),
    ({"--filing-number": "has space"}, "filing number"),
])
def test_cli_refuses_bad_algorithms(runner: FlaskCliRunner, change: dict[str, str], message: str) -> None:
    args = list(ADD)
    for option, value in change.items():
        args[args.index(option) + 1] = value
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output


def test_filing_numbers_are_unique(runner: FlaskCliRunner, app: Flask) -> None:
    assert runner.invoke(main, ADD).exit_code == 0
    again = runner.invoke(main, ADD)
    assert again.exit_code == 2
    assert "already registered" in again.output
    assert len(audit_entries(app, "algorithm.registered")) == 1


def test_cli_suspend_of_an_unknown_algorithm_fails(runner: FlaskCliRunner) -> None:
    result = runner.invoke(main, ["algorithms", "suspend", "FN-NOPE"])
    assert result.exit_code == 2
    assert "no algorithm" in result.output


BODY = {"filing_number": "FN-API-0001", "name": "Voicer", "provider": "Example Co", "product": "VoiceApp",
        "operations": ["voice_clone"], "upstream_url": "http://10.0.0.7:9000/edit"}


@pytest.fixture
def admin_token(app: Flask, client: FlaskClient) -> str:
    return token_for(client, make_app_client(app, scope="admin", name="Operator"))


def test_api_registers_and_the_public_list_hides_the_upstream(
    app: Flask, client: FlaskClient, admin_token: str
) -> None:
    created = client.post("/v1/algorithms", headers=bearer(admin_token), json=BODY)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["upstream_url"] == BODY["upstream_url"]

    listed = client.get("/v1/algorithms")
    assert listed.status_code == 200
    [public] = listed.get_json()["algorithms"]
    assert public == {"filing_number": "FN-API-0001", "name": "Voicer", "provider": "Example Co",
                      "product": "VoiceApp", "operations": ["voice_clone"], "status": "active"}
    assert "10.0.0.7" not in listed.get_data(as_text=True)

    suspended = client.post("/v1/algorithms/FN-API-0001/suspend", headers=bearer(admin_token))
    assert suspended.status_code == 200
    assert client.get("/v1/algorithms").get_json()["algorithms"][0]["status"] == "suspended"
    [entry] = audit_entries(app, "algorithm.suspended")
    assert entry["actor"]["type"] == "admin"


def test_api_refusals(app: Flask, client: FlaskClient, admin_token: str) -> None:
    edit_app: App = make_app_client(app, scope="edit:face edit:voice")
    not_admin = client.post("/v1/algorithms", headers=bearer(token_for(client, edit_app)), json=BODY)
    assert (not_admin.status_code, not_admin.get_json()["code"]) == (403, "insufficient_scope")
    assert client.post("/v1/algorithms", json=BODY).status_code == 401

    assert client.post("/v1/algorithms", headers=bearer(admin_token), json=BODY).status_code == 201
    duplicate = client.post("/v1/algorithms", headers=bearer(admin_token), json=BODY)
    assert (duplicate.status_code, duplicate.get_json()["code"]) == (409, "filing_number_taken")

    bad = client.post("/v1/algorithms", headers=bearer(admin_token),
                      json={**BODY, "filing_number": "FN-2", "upstream_url": "file:///etc/passwd"})
    assert (bad.status_code, bad.get_json()["code"]) == (422, "invalid_algorithm")
    unknown = client.post("/v1/algorithms/FN-NOPE/suspend", headers=bearer(admin_token))
    assert (unknown.status_code, unknown.get_json()["code"]) == (404, "algorithm_not_found")
    assert len(client.get("/v1/algorithms").get_json()["algorithms"]) == 1
