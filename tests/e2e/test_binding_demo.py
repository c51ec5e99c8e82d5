"""The README's demo as a newcomer runs it, with the product's defaults (face binding on).

``python -m gateway.demo`` from the built wheel, in a folder outside the checkout, with the environment
``.ci/serve`` gives it. The consent URL and person A's selfie are read from what it prints, the one-time
code from its terminal (the console notifier); the selfie is uploaded on the consent screen; then the
demo app's two edits and the printed ``curl`` lines give the answers the welcome promises.

The wheel is unpacked into a fresh virtualenv that borrows this environment's dependencies (a .pth
file): installing them from an index takes minutes and the network, and tests/e2e/test_wheel_install.py
does that already. What matters here is that the photos ship in the wheel, that the printed path is the
installed one, and that the instance folder (database, keys, the demo's OAuth client) is the
virtualenv's own rather than the checkout's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.demo.__main__ import taken_ports
from tests.e2e.cluster import free_port

pytestmark = pytest.mark.e2e

pytest.importorskip("dlib")

ROOT = Path(__file__).resolve().parents[2]
CONTACT = "newcomer@example.com"
CLI = "import sys; from gateway.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked into a fresh virtualenv; returns its python."""
    work = tmp_path_factory.mktemp("demo-wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], check=True, timeout=120)
    python = work / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Only this environment's site-packages, never the checkout: its editable-install .pth is not read
    # from a folder that a .pth adds, so `gateway` comes from the unpacked wheel alone.
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    with zipfile.ZipFile(next((work / "dist").glob("biometric_consent_gateway-*.whl"))) as wheel:
        wheel.extractall(site)
    return python


def _ports(host: str) -> tuple[int, int]:
    """A port for the gateway, and one for the upstream whose next port (the demo app's) is free too."""
    for _ in range(50):
        gateway, upstream = free_port(), free_port()
        if len({gateway, upstream, upstream + 1}) == 3 and not taken_ports(host, [upstream + 1]):
            return gateway, upstream
    raise RuntimeError("no free ports")


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    folder: Path
    python: Path

    @property
    def printed(self) -> str:
        return (self.folder / "demo.out").read_text()

    @property
    def terminal_log(self) -> str:
        return (self.folder / "demo.err").read_text()

    def said(self, pattern: str) -> str:
        found = re.search(pattern, self.printed)
        assert found, (pattern, self.printed[-3000:])
        return found.group(1)

    def code_for(self, contact: str) -> str:
        codes: list[str] = re.findall(rf"to {re.escape(contact)}: .*?\b(\d{{6}})\b", self.terminal_log)
        assert codes, self.terminal_log[-3000:]
        return codes[-1]


@pytest.fixture(scope="module")
def running(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    folder = tmp_path_factory.mktemp("demo-run")
    host = "127.0.0.1"
    port, upstream_port = _ports(host)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONSENT_GATEWAY_", "PYTHON"))}
    # What .ci/serve exports; binding is the product's default, said out loud because tests/conftest.py
    # turns it off for everything else.
    env |= {"CONSENT_GATEWAY_ISSUER": f"http://{host}:{port}", "CONSENT_GATEWAY_NOTIFIER": "console",
            "CONSENT_GATEWAY_SECRET_KEY": "demo-secret-key-for-the-binding-demo-test",
            "CONSENT_GATEWAY_BINDING_MODALITIES": '["face"]'}
    subprocess.run([str(installed), "-c", CLI, "init"], env=env, cwd=folder, check=True, capture_output=True,
                   timeout=120)
    with (folder / "demo.out").open("wb") as out, (folder / "demo.err").open("wb") as err:
        process = subprocess.Popen([str(installed), "-m", "gateway.demo", host, str(port), str(upstream_port)],
                                   env=env, cwd=folder, stdout=out, stderr=err)
    demo = RunningDemo(process, folder, installed)
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C stops everything." not in demo.printed:
            assert process.poll() is None, demo.terminal_log[-3000:]
            assert time.monotonic() < deadline, demo.terminal_log[-3000:]
            time.sleep(0.2)  # a starting process: nothing to wait on but its output
        yield demo
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


@dataclass
class Granted:
    consent_id: str
    app_url: str
    browser: httpx.Client


@pytest.fixture(scope="module")
def granted(running: RunningDemo) -> Iterator[Granted]:
    """The newcomer opens the printed consent URL, types the code from the terminal, uploads the selfie."""
    consent_url = running.said(r"as the person asked: (\S+)")
    selfie = Path(running.said(r"then approve:\n\s+(\S+)\n"))
    # The installed package's own file, not the checkout's.
    assert selfie.is_relative_to(running.python.parents[1]), selfie
    with httpx.Client(timeout=120) as browser:
        def csrf() -> str:
            return _field(browser.get(consent_url).text, "csrf_token")

        # The request names no contact: the person enters their own address, as the welcome says.
        sent = browser.post(f"{consent_url}/code", data={"csrf_token": csrf(), "contact": CONTACT})
        assert sent.status_code == 303, sent.text[:800]
        checked = browser.post(f"{consent_url}/verify", data={"csrf_token": csrf(), "code": running.code_for(CONTACT)})
        assert checked.status_code == 303, checked.text[:800]
        notice = browser.get(consent_url).text
        assert 'name="selfie"' in notice
        operations = re.findall(r'name="operations" value="([^"]+)"', notice)
        assert "face_attribute_edit" in operations
        decided = browser.post(f"{consent_url}/decision", data={
            "csrf_token": _field(notice, "csrf_token"), "notice_sha256": _field(notice, "notice_sha256"),
            "locale": _field(notice, "locale"), "operations": operations, "action": "approve"},
            files={"selfie": (selfie.name, selfie.read_bytes(), "image/jpeg")})
        assert decided.status_code == 303, decided.text[:800]
        back = decided.headers["location"]
        assert "status=granted" in back
        app_url = back.split("/back?")[0]
        assert browser.get(back).status_code == 302
        consents = re.findall(r'name="consent_id" value="([^"]+)"', browser.get(f"{app_url}/").text)
        assert consents, "the demo app shows no consent"
        yield Granted(consents[0], app_url, browser)


def test_the_demo_app_edits_the_same_person_and_refuses_someone_else(granted: Granted) -> None:
    for operation in ("face_swap", "face_attribute_edit"):
        same = granted.browser.post(f"{granted.app_url}/edit", data={
            "consent_id": granted.consent_id, "operation": operation, "which": "same"})
        assert same.status_code == 200, same.text[:2000]
        assert "Label verified" in same.text

        other = granted.browser.post(f"{granted.app_url}/edit", data={
            "consent_id": granted.consent_id, "operation": operation, "which": "other"})
        assert other.status_code == 403, other.text[:2000]
        assert 'id="reason">biometric_mismatch<' in other.text


def test_the_printed_curl_lines_do_what_they_say(running: RunningDemo, granted: Granted, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    printed = running.printed
    lines = printed[printed.index("  export CLIENT_ID"):printed.index("A client of your own")]
    lines = lines.replace("CONSENT_ID=cns_...", f"CONSENT_ID={granted.consent_id}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", lines], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    allowed, mismatch, decision = done.stdout.strip().splitlines()
    assert allowed == "200 image/png"
    assert (tmp_path / "edited.png").read_bytes().startswith(b"\x89PNG")
    assert '"reason": "biometric_mismatch"' in mismatch
    assert '"reason": "binding_requires_media"' in decision
