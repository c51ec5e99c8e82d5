"""``python -m gateway.demo HOST PORT UPSTREAM_PORT``: the README's click-through demo.

Registers the reference upstream as algorithm DEMO-0001, creates the demo app's OAuth client (kept in
the instance folder so restarts reuse it), then runs three processes: the gateway (gunicorn), the
reference upstream and the pretend app. Ctrl-C stops all three.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.exc import SQLAlchemyError

from gateway import create_app
from gateway.auditing.trail import OPERATOR, AuditJournal
from gateway.auth.models import OAuthClient
from gateway.auth.oauth import create_client
from gateway.core.clock import utcnow
from gateway.core.config import ConfigError
from gateway.core.db import db
from gateway.demo import DEMO_FILING_NUMBER, PERSON_A_ANOTHER_PHOTO, PERSON_A_SELFIE, PERSON_B, PHOTOS
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
        kept = _kept_credentials(credentials_file)
        # Credentials kept for another database (CONSENT_GATEWAY_DATABASE_URL changed) name no client here.
        if kept is None or session.get(OAuthClient, kept["client_id"]) is None:
            client, secret = create_client(session, name="Demo Face App", scope=DEMO_SCOPES,
                                           redirect_uris=[f"http://{host}:{app_port}/back"], actor=OPERATOR,
                                           journal=journal, now=now)
            kept = {"client_id": client.client_id, "client_secret": secret}
            credentials_file.parent.mkdir(parents=True, exist_ok=True)
            credentials_file.unlink(missing_ok=True)
            fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(kept, handle)
    return kept


def _kept_credentials(path: Path) -> dict[str, str] | None:
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or not all(isinstance(kept.get(k), str) for k in ("client_id", "client_secret")):
        return None
    return {"client_id": kept["client_id"], "client_secret": kept["client_secret"]}


def taken_ports(host: str, ports: list[int]) -> list[int]:
    """The ports someone is already listening on (e.g. a demo started earlier and still running)."""
    taken = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append(port)
    return taken


def _first_request(gateway_url: str, credentials: dict[str, str], app_url: str) -> str:
    """A consent request the newcomer can open straight away (the person enters their own address)."""
    token = httpx.post(f"{gateway_url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(credentials["client_id"], credentials["client_secret"]), timeout=30).json()
    created = httpx.post(f"{gateway_url}/v1/consent-requests",
                         headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30,
                         json={"operations": ["face_swap", "face_attribute_edit", "voice_clone"],
                               "purpose": "Try the Consent Gateway demo: swap faces in your own photos",
                               "redirect_uri": f"{app_url}/back"})
    consent_url: str = created.json()["consent_url"]
    return consent_url


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


def _welcome(*, gateway_url: str, app_url: str, upstream_port: int, consent_url: str,
             credentials: dict[str, str], face_binding: bool) -> str:
    # Double-quoted for the shell so that $CONSENT_ID and $DIGEST are filled in.
    decision = json.dumps({"operation": "face_attribute_edit", "algorithm": DEMO_FILING_NUMBER,
                           "consents": ["$CONSENT_ID"], "media": [{"role": "target", "sha256": "$DIGEST"}]})
    edit = json.dumps({"operation": "face_attribute_edit", "algorithm": DEMO_FILING_NUMBER,
                       "consents": ["$CONSENT_ID"]})
    decision_arg, edit_arg = (text.replace('"', '\\"') for text in (decision, edit))
    continued = " \\\n      "
    bearer = '-H "Authorization: Bearer $TOKEN"'
    # Quoted: an installed package's path may hold spaces.
    selfie, same, other = (shlex.quote(str(path)) for path in (PERSON_A_SELFIE, PERSON_A_ANOTHER_PHOTO, PERSON_B))
    if face_binding:
        binding = f"""Face binding is on: a consent to face operations is granted only with a photo of the person's face,
and an edit goes through only if every face in its photos is the face of someone whose consent it names.

  1. Open the demo app:            {app_url}/
     Ask for consent; on the consent screen enter any e-mail address. The one-time code is
     printed in this terminal (notifier: console). Tick operations; the screen asks for a photo of
     your face: upload person A's selfie (or a photo of yourself), then approve:
       {selfie}
  2. Back in the demo app, "Edit a photo of the same person" sends another photo of person A: the
     gateway finds the same face and allows, the reference upstream (algorithm {DEMO_FILING_NUMBER},
     http://127.0.0.1:{upstream_port}/edit) edits, you see the labelled result. "Edit a photo of someone
     else" sends person B's photo: refused (biometric_mismatch) before the upstream sees anything."""
        edits = f"""  # person A's other photo: allowed; edited.png is the labelled result
  curl -s {bearer} -o edited.png -w '%{{http_code}} %{{content_type}}\\n'{continued}-F "request={edit_arg};type=application/json"{continued}-F target=@{same} {gateway_url}/v1/edits
  # person B, who never consented: 403, "reason": "biometric_mismatch"
  curl -s {bearer} -w '\\n'{continued}-F "request={edit_arg};type=application/json"{continued}-F target=@{other} {gateway_url}/v1/edits
  # A decision alone (no media sent) cannot check faces: 403, "reason": "binding_requires_media"
  DIGEST=$(sha256sum {same} | cut -c1-64)
  curl -s {bearer} -w '\\n' -H 'Content-Type: application/json'{continued}-d "{decision_arg}"{continued}{gateway_url}/v1/decisions"""
    else:
        binding = f"""Face binding is off in this configuration (CONSENT_GATEWAY_BINDING_MODALITIES): the consent screen
asks for no photo, and edits are not checked against anyone's face.

  1. Open the demo app:            {app_url}/
     Ask for consent; on the consent screen enter any e-mail address. The one-time code is
     printed in this terminal (notifier: console). Tick operations and approve.
  2. Back in the demo app, send an edit: the gateway decides, the reference upstream
     (algorithm {DEMO_FILING_NUMBER}, http://127.0.0.1:{upstream_port}/edit) edits, you see the result."""
        edits = f"""  curl -s {bearer} -o edited.png -w '%{{http_code}} %{{content_type}}\\n'{continued}-F "request={edit_arg};type=application/json"{continued}-F target=@{same} {gateway_url}/v1/edits
  DIGEST=$(sha256sum {same} | cut -c1-64)
  curl -s {bearer} -w '\\n' -H 'Content-Type: application/json'{continued}-d "{decision_arg}"{continued}{gateway_url}/v1/decisions"""
    return f"""
Consent Gateway is running at {gateway_url}   (API reference: {gateway_url}/docs)
{binding}
  3. Withdraw on {gateway_url}/me and send the edit again: refused (consent_withdrawn).

Or open a consent request right away, as the person asked: {consent_url}

The same from a shell, as an app does (the demo app's OAuth client; photos in {PHOTOS}):
  export CLIENT_ID={credentials["client_id"]} CLIENT_SECRET={credentials["client_secret"]}
  TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials {gateway_url}/oauth/token{continued}| python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  CONSENT_ID=cns_...   # the consent_id once granted (with face_attribute_edit ticked): curl -s {bearer} {consent_url.replace("/consent/", "/v1/consent-requests/")}
{edits}

A client of your own:
  .venv/bin/consent-gateway clients create --name "My App" --scope "consent:read consent:write edit:face"
Ctrl-C stops everything.
"""


def main(argv: list[str]) -> int:
    host, port, upstream_port = argv[0], int(argv[1]), int(argv[2])
    app_port = upstream_port + 1
    taken = taken_ports(host, [port, upstream_port, app_port])
    if taken:
        names = {port: "the gateway", upstream_port: "the reference upstream", app_port: "the demo app"}
        for busy in taken:
            print(f"Port {busy} ({names[busy]}) is in use on {host}: is the demo already running? Stop it, "
                  "or choose other ports (PORT=… UPSTREAM_PORT=… bash .ci/serve).", file=sys.stderr)
        return 1
    gateway_url = f"http://{host}:{port}"
    app_url = f"http://{host}:{app_port}"
    try:
        credentials = _prepare(host, upstream_port, app_port)
        # What the welcome tells the newcomer to do depends on it (the tests run the demo both ways).
        face_binding = "face" in create_app().config["BINDING_MODALITIES"]
    except (ConfigError, SQLAlchemyError) as exc:
        # `bash .ci/serve` ran `init` already; what is left is configuration, said in one line.
        print(f"Error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
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
        consent_url = _first_request(gateway_url, credentials, app_url)
        print(_welcome(gateway_url=gateway_url, app_url=app_url, upstream_port=upstream_port,
                       consent_url=consent_url, credentials=credentials, face_binding=face_binding), flush=True)
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
