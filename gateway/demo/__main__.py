"""``python -m gateway.demo.__main__ HOST PORT UPSTREAM_PORT``: the README's click-through demo.

Registers the reference upstream as algorithm DEMO-0001, creates the demo app's OAuth client (kept in
the instance folder so restarts reuse it), then runs three processes: the gateway (gunicorn), the
reference upstream and the pretend app. Ctrl-C stops all three.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway import create_app
from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.auth.oauth import create_client
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.demo import DEMO_FILING_NUMBER
from gateway.registry import algorithms as registry

DEMO_SCOPES = "consent:read consent:write edit:face edit:voice audit:read audit:export"


def _prepare(host: str, upstream_port: int, app_port: int) -> dict[str, str]:
    app = create_app()
    credentials_file = Path(app.instance_path) / "demo-client.json"
    now = utcnow()
    with app.app_context(), db.unit_of_work() as session:
        journal = AuditJournal(session, now)
        if registry.get_algorithm(session, DEMO_FILING_NUMBER) is None:
            registry.register(session, registry.AlgorithmSpec(
                filing_number=DEMO_FILING_NUMBER, name="Demo face and voice editor", provider="Consent Gateway",
                product="reference upstream",
                operations=("face_swap", "face_reenactment", "face_attribute_edit", "voice_clone",
                            "voice_conversion", "voice_edit"),
                upstream_url=f"http://{host}:{upstream_port}/edit"), actor=OPERATOR, journal=journal, now=now)
        if not credentials_file.exists():
            client, secret = create_client(session, name="Demo Face App", scope=DEMO_SCOPES,
                                           redirect_uris=[f"http://{host}:{app_port}/back"], actor=OPERATOR,
                                           journal=journal, now=now)
            fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"client_id": client.client_id, "client_secret": secret}, handle)
    credentials: dict[str, str] = json.loads(credentials_file.read_text())
    return credentials


def _wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)  # polling a starting server; nothing in the product depends on this
    raise SystemExit(f"{url} did not become ready")


def main(argv: list[str]) -> int:
    host, port, upstream_port = argv[0], int(argv[1]), int(argv[2])
    app_port = upstream_port + 1
    gateway_url = f"http://{host}:{port}"
    credentials = _prepare(host, upstream_port, app_port)
    # A SIGTERM (not only Ctrl-C) must also stop the three children, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Through the console-script entry point: command groups register themselves on gateway.cli.main.
    exe = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
    children = [
        subprocess.Popen([*exe, "serve", "--host", host, "--port", str(port)]),
        subprocess.Popen([*exe, "demo-upstream", "--host", host, "--port", str(upstream_port),
                          "--issuer", gateway_url]),
        # The secret goes by environment, not argv: a command line is visible to everyone in `ps`.
        subprocess.Popen([sys.executable, "-c",
                          "import os, sys; from gateway.demo.app import create_demo_app; "
                          "create_demo_app(gateway=sys.argv[1], client_id=sys.argv[2], "
                          "client_secret=os.environ['DEMO_CLIENT_SECRET'], "
                          "filing_number=sys.argv[3], public_url=sys.argv[4])"
                          ".run(host=sys.argv[5], port=int(sys.argv[6]))",
                          gateway_url, credentials["client_id"], DEMO_FILING_NUMBER,
                          f"http://{host}:{app_port}", host, str(app_port)],
                         env={**os.environ, "DEMO_CLIENT_SECRET": credentials["client_secret"]}),
    ]
    try:
        _wait_ready(f"{gateway_url}/readyz")
        print(f"""
Consent Gateway is running at {gateway_url}   (API reference: {gateway_url}/docs)

  1. Open the demo app:            http://{host}:{app_port}/
     Ask for consent; on the consent screen enter any e-mail address. The one-time code is
     printed in this terminal (notifier: console). Tick operations and approve.
  2. Back in the demo app, send an edit: the gateway decides, the reference upstream
     (algorithm {DEMO_FILING_NUMBER}, http://{host}:{upstream_port}/edit) edits, you see the result.
  3. Withdraw on {gateway_url}/me and send the edit again: refused (consent_withdrawn).

Demo app credentials (OAuth client): {credentials["client_id"]} / {credentials["client_secret"]}
A client of your own:
  .venv/bin/consent-gateway clients create --name "My App" --scope "consent:read consent:write edit:face"
Ctrl-C stops everything.
""", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
