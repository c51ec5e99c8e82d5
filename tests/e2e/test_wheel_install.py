"""What an operator installs: the built wheel in a clean virtualenv, run from outside the checkout.

A normal (non-editable) install once failed at `consent-gateway init` because the migrations were not
in the package; only the editable install the test suite uses worked. This builds the wheel, installs
it with its dependencies in a fresh venv and runs the operator's first commands from an empty folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed in a fresh venv; returns the venv's bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist", ROOT)
    wheel = next((work / "dist").glob("biometric_consent_gateway-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "gateway/_migrations/env.py" in names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    _run(sys.executable, "-m", "venv", work / "venv")
    _run(work / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         wheel, timeout=900)
    return work / "venv" / "bin"


def test_the_wheel_initialises_serves_registers_exports_and_verifies(installed: Path, tmp_path: Path) -> None:
    gateway = installed / "consent-gateway"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONSENT_GATEWAY_", "PYTHON"))}
    env["CONSENT_GATEWAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    port = free_port()
    env["CONSENT_GATEWAY_ISSUER"] = f"http://127.0.0.1:{port}"
    # Run from an empty folder: nothing of the checkout may be importable.
    site = tmp_path / "site"
    site.mkdir()
    init = json.loads(_run(gateway, "init", "--json", env=env, cwd=site))
    assert init["migrated"] is True
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen([str(gateway), "serve", "--port", str(port), "--workers", "2"], env=env,
                                  cwd=site, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not become ready"
                time.sleep(0.2)  # waiting for a starting server: nothing to wait on but the socket
            client = json.loads(_run(gateway, "clients", "create", "--name", "Wheel App", "--scope",
                                     "consent:read audit:read audit:export", "--json", env=env, cwd=site))
            token = httpx.post(f"http://127.0.0.1:{port}/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(client["client_id"], client["client_secret"]), timeout=10)
            assert token.status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=30)
    bundle = tmp_path / "audit.zip"
    _run(gateway, "audit", "export", "--since", "2020-01-01T00:00:00Z", "-o", bundle, env=env, cwd=site)
    # As an auditor does on day one: pin the keys the gateway prints, verify against them.
    keys = json.loads(_run(gateway, "audit", "keys", "--json", env=env, cwd=site))["vkeys"]
    pinned = [arg for vkey in keys for arg in ("--key", vkey)]
    report = json.loads(_run(gateway, "audit", "verify", bundle, *pinned, "--json", env=env, cwd=site))
    assert report["ok"] is True, report
    assert report["verdict"] == "trusted", report
