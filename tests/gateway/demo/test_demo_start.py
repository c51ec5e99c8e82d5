"""Starting the demo twice: the second says which port is taken and exits non-zero, starting nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from gateway.demo.__main__ import taken_ports


def test_taken_ports_names_the_listening_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert taken_ports("127.0.0.1", [port]) == [port]
    assert taken_ports("127.0.0.1", [port]) == []


def test_a_second_demo_refuses_to_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "CONSENT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
        done = subprocess.run([sys.executable, "-m", "gateway.demo", "127.0.0.1", str(port), "0"],
                              capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert f"Port {port} (the gateway) is in use" in done.stderr
    assert "Consent Gateway is running" not in done.stdout
