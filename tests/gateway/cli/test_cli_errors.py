"""An operator's mistakes in the environment end a command with one line saying what is wrong.

The installed ``consent-gateway`` script runs in a subprocess, as an operator runs it: no traceback,
exit status 1, and nothing done (a bad key is found before the database is migrated).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MASTER_KEY

SCRIPT = str(Path(sys.executable).with_name("consent-gateway"))


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_GATEWAY_")}
    environment.update({"CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
                        "CONSENT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"})
    environment.update({f"CONSENT_GATEWAY_{name}": value for name, value in env.items()})
    return subprocess.run([SCRIPT, *args], cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=120, check=False)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line of a command that failed as an operator should see it fail."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return error


@pytest.mark.parametrize(("env", "message"), [
    ({"DATABASE_URL": "garbage"}, "is not a database URL"),
    ({"DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1/test"}, "not postgresql+psycopg2"),
    ({"DATABASE_URL": "mysql://root@127.0.0.1/gateway"}, "not mysql"),
    ({"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"}, "the database cannot be used"),
    ({"DATABASE_URL": "sqlite:////nonexistent/directory/gateway.db"}, "the database cannot be used"),
    ({"MASTER_KEY": "not a key"}, "MASTER_KEY is not valid base64"),
    ({"MASTER_KEY": "c2hvcnQ="}, "MASTER_KEY must decode to 32 bytes"),
])
def test_init_says_what_is_wrong_in_one_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    assert message in _error_line(_run(tmp_path, "init", **env))
    if "MASTER_KEY" in env:
        # The key is checked before anything is migrated: the database was never created.
        assert not (tmp_path / "gateway.db").exists()


def test_production_serve_refuses_a_malformed_master_key(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", "--port", "0", PRODUCTION="true", MASTER_KEY="bm90IDMyIGJ5dGVz")
    assert result.returncode == 1
    assert "Error: CONSENT_GATEWAY_MASTER_KEY must decode to 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_good_environment_still_initialises(tmp_path: Path) -> None:
    result = _run(tmp_path, "init", "--json")
    assert result.returncode == 0, result.stderr
    assert '"key_created": true' in result.stdout


@pytest.mark.parametrize(("env", "message"), [
    # As a plain string, "face" would have been the modalities f, a, c and e: face binding silently off.
    ({"BINDING_MODALITIES": "face"}, "BINDING_MODALITIES must be a JSON list"),
    ({"BINDING_MODALITIES": '["fase"]'}, "unknown modality 'fase'"),
    ({"BINDING_MODALITIES": "42"}, "BINDING_MODALITIES must be a JSON list"),
    ({"TICKET_TTL_SECONDS": "500"}, "TICKET_TTL_SECONDS is at most 120"),
    ({"ACCESS_TOKEN_TTL": "abc"}, "ACCESS_TOKEN_TTL must be a whole number"),
    ({"ACCESS_TOKEN_TTL": "0"}, "ACCESS_TOKEN_TTL must be at least 1"),
    ({"AUDIT_RETENTION_DAYS": "abc"}, "AUDIT_RETENTION_DAYS must be a whole number"),
    ({"AUDIT_WITNESSES": "notjson"}, "AUDIT_WITNESSES must be a JSON list"),
    ({"AUDIT_WITNESSES": '[{"url": "ftp://w", "vkey": "x"}]'}, "AUDIT_WITNESSES"),
    ({"NOTIFIER": "bogus"}, "CONSENT_GATEWAY_NOTIFIER"),
    ({"UPLOAD_DIR": "/etc/hostname"}, "is not a directory"),
])
def test_a_setting_of_the_wrong_kind_stops_every_command(tmp_path: Path, env: dict[str, str], message: str) -> None:
    for command in (["init"], ["keys", "list"]):
        assert message in _error_line(_run(tmp_path, *command, **env))
    assert not (tmp_path / "gateway.db").exists()


def test_the_wrong_master_key_neither_rotates_nor_initialises(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    before = _run(tmp_path, "keys", "list", "--json").stdout
    other = base64.b64encode(b"o" * 32).decode()
    for command in (["keys", "rotate"], ["init"]):
        result = _run(tmp_path, *command, MASTER_KEY=other)
        assert result.returncode == 1, result.stdout
        assert "is not the master key it was made with" in result.stderr
        assert "Traceback" not in result.stderr
    # Nothing changed: the active key is the one every process with the right master key can use.
    assert _run(tmp_path, "keys", "list", "--json").stdout == before
    assert _run(tmp_path, "keys", "rotate").returncode == 0
    # --force is the way out when the active key really is unusable.
    assert _run(tmp_path, "keys", "rotate", "--force", MASTER_KEY=other).returncode == 0
    assert _run(tmp_path, "keys", "rotate").returncode == 1
    assert _run(tmp_path, "keys", "rotate", "--force").returncode == 0


def test_an_export_that_cannot_be_written_is_not_recorded_as_made(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    result = _run(tmp_path, "audit", "export", "-o", str(tmp_path / "no" / "such" / "dir.zip"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot write" in result.stderr
    _run(tmp_path, "audit", "sequence")
    with sqlite3.connect(tmp_path / "gateway.db") as conn:
        bodies = [bytes(row[0]) for row in conn.execute("SELECT body FROM audit_entries UNION ALL "
                                                        "SELECT body FROM audit_queue")]
    assert not any(b"audit.exported" in body for body in bodies)
    assert _run(tmp_path, "audit", "export", "-o", str(tmp_path / "made.zip")).returncode == 0


def test_a_database_init_never_ran_on_says_so(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "gateway.db").close()
    result = _run(tmp_path, "keys", "list")
    assert result.returncode == 1
    assert "run `consent-gateway init` on this database first" in result.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        error = _error_line(_run(tmp_path, "serve", "--port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port}" in error


def test_json_output_writes_times_as_rfc_3339(tmp_path: Path) -> None:
    assert _run(tmp_path, "init").returncode == 0
    [key] = json.loads(_run(tmp_path, "keys", "list", "--json").stdout)["keys"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", key["created_at"]), key
