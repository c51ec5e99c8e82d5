"""An operator's mistakes in the environment end a command with one line saying what is wrong.

The installed ``consent-gateway`` script runs in a subprocess, as an operator runs it: no traceback,
exit status 1, and nothing done (a bad key is found before the database is migrated).
"""

from __future__ import annotations

import os
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
    result = _run(tmp_path, "init", **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert message in error, result.stderr
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
