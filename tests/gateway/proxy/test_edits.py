"""POST /v1/edits on real sockets: gateway → upstream → edited media back; refusals; limits; temp files."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops
from sqlalchemy import update
from werkzeug.wrappers import Request, Response

from gateway.cli import main
from gateway.core.db import db
from gateway.demo.upstream import create_demo_upstream
from gateway.proxy import upstream
from gateway.registry.algorithms import get_algorithm
from gateway.registry.models import Algorithm
from tests.conftest import MASTER_KEY
from tests.e2e.conftest import LiveServer
from tests.factories import (
    App,
    audit_entries,
    consent_row,
    end_consent,
    make_app_client,
    make_consent,
    register_algorithm,
)
from tests.gateway.conftest import FILING, Served, free_port
from tests.gateway.demo.test_demo_upstream import AUDIO, SOURCE, TARGET, energy_at

pytestmark = pytest.mark.e2e


class Capture:
    """WSGI middleware that keeps what the gateway sent upstream (headers and body), to replay it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[dict[str, str], bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        self.requests.append((headers, body))
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


class Stack:
    def __init__(self, gateway: LiveServer, upload_dir: Path) -> None:
        self.gateway = gateway
        self.upload_dir = upload_dir
        self.edit_app: App = make_app_client(gateway.app, name="Edit App")
        response = httpx.post(f"{gateway.url}/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(self.edit_app.client_id, self.edit_app.secret))
        self.token: str = response.json()["access_token"]

    def consent(self, **terms: Any) -> str:
        return make_consent(self.gateway.app, self.edit_app.client_id, **terms)

    def edit(self, request: dict[str, Any], files: dict[str, tuple[str, Any, str]], **kwargs: Any) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/v1/edits",
            headers={"Authorization": f"Bearer {self.token}"},
            files={"request": (None, json.dumps(request), "application/json"), **files},
            timeout=120, **kwargs,
        )

    def assert_no_temporary_files(self) -> None:
        assert list(self.upload_dir.iterdir()) == []
        # The files are unlinked at once, so "empty" must also mean "no descriptor still open".
        open_files = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                      if _readlink(fd).startswith(str(self.upload_dir))]
        assert open_files == []


def _readlink(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.fixture
def stack(gateway_server: Callable[..., LiveServer], tmp_path: Path) -> Stack:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return Stack(gateway_server(UPLOAD_DIR=str(upload_dir), UPSTREAM_TIMEOUT_SECONDS=2), upload_dir)


@pytest.fixture
def demo_upstream(stack: Stack, served: Callable[[Any], Served]) -> Capture:
    upstream = Capture(create_demo_upstream(issuer=stack.gateway.url,
                                            jwks=f"{stack.gateway.url}/.well-known/jwks.json",
                                            filing_number=FILING))
    url = served(upstream).url
    register_algorithm(stack.gateway.app, FILING, upstream_url=f"{url}/edit")
    return upstream


def test_face_swap_through_the_gateway_returns_the_edited_image(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("face_swap",))
    response = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                          {"source": ("me.png", SOURCE, "image/png"), "target": ("film.jpg", TARGET, "image/jpeg")})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    decision_id = response.headers["Consent-Decision"]
    assert decision_id.startswith("dec_")
    edited = Image.open(io.BytesIO(response.content))
    original = Image.open(io.BytesIO(TARGET)).convert(edited.mode)
    assert edited.size == original.size
    assert ImageChops.difference(edited, original).getbbox() is not None  # visibly edited

    # The upstream got exactly the authorised media with a ticket naming them.
    [(headers, _body)] = demo_upstream.requests
    assert headers["Consent-Decision"] == decision_id
    assert headers["Consent-Ticket"].count(".") == 2
    app = stack.gateway.app
    assert consent_row(app, consent_id) == ("active", 1)
    [allowed] = audit_entries(app, "decision.allowed")
    assert allowed["media"] == {"source": hashlib.sha256(SOURCE).hexdigest(),
                                "target": hashlib.sha256(TARGET).hexdigest()}
    [completed] = audit_entries(app, "decision.completed")
    assert completed["decision_id"] == decision_id
    assert completed["request_id"] == response.headers["X-Request-Id"]
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()
    stack.assert_no_temporary_files()


def test_the_upstream_refuses_a_replay_of_the_gateways_ticket(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("face_swap",))
    first = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                       {"source": ("a.png", SOURCE, "image/png"), "target": ("b.jpg", TARGET, "image/jpeg")})
    assert first.status_code == 200
    [(headers, body)] = demo_upstream.requests
    replay = httpx.post(_upstream_url(stack), content=body,
                        headers={k: v for k, v in headers.items() if k in ("Consent-Ticket", "Content-Type")})
    assert replay.status_code == 403
    assert replay.json()["code"] == "ticket_replayed"


def _upstream_url(stack: Stack) -> str:
    with stack.gateway.app.app_context(), db.unit_of_work() as session:
        row = get_algorithm(session, FILING)
        assert row is not None
        return row.upstream_url


def test_voice_edit_through_the_gateway(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("voice_edit",))
    response = stack.edit({"operation": "voice_edit", "algorithm": FILING, "consents": [consent_id]},
                          {"audio": ("me.wav", AUDIO, "audio/wav")})
    # The demo algorithm was registered for face_swap, face_attribute_edit and voice_clone only.
    assert response.status_code == 403
    assert response.json()["code"] == "algorithm_not_registered"
    assert demo_upstream.requests == []

    consent_id = stack.consent(operations=("voice_clone",))
    response = stack.edit({"operation": "voice_clone", "algorithm": FILING, "consents": [consent_id]},
                          {"audio": ("me.wav", AUDIO, "audio/wav")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    # Pitched down four semitones: the 220 Hz tone moves towards 175 Hz.
    assert energy_at(response.content, 175) > energy_at(response.content, 220)
    stack.assert_no_temporary_files()


FACES = Path(__file__).parents[2] / "data" / "faces"


@pytest.mark.parametrize(("operation", "files", "reason"), [
    # A voice consent carries no face: a photo sent as "audio" is refused, whatever it says it is.
    ("voice_clone", {"audio": ("me.wav", (FACES / "obama_1.jpg").read_bytes(), "audio/wav")}, "media_not_covered"),
    ("voice_clone", {"audio": ("me.wav", AUDIO, "audio/wav"), "extra": ("x.png", SOURCE, "image/png")},
     "media_not_covered"),
    ("voice_clone", {"audio": ("me.m4a", (FACES / "obama_1_rotated.mp4").read_bytes(), "audio/mp4")},
     "media_not_covered"),
    ("voice_clone", {"audio": ("me.wav", b"RIFF but not a sound at all", "audio/wav")}, "unreadable_media"),
    ("face_swap", {"source": ("a.png", b"\x89PNG\r\n\x1a\n then nothing", "image/png"),
                   "target": ("b.jpg", TARGET, "image/jpeg")}, "unreadable_media"),
    ("face_swap", {"source": ("a.png", os.urandom(4096), "image/png")}, "unreadable_media"),
])
def test_the_bytes_decide_what_a_part_is_even_where_no_consent_is_bound(
    stack: Stack, demo_upstream: Capture, operation: str, files: dict[str, tuple[str, bytes, str]], reason: str,
) -> None:
    consent_id = stack.consent(operations=(operation,))
    response = stack.edit({"operation": operation, "algorithm": FILING, "consents": [consent_id]}, files)
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["reason"] == reason
    assert "part '" in problem["detail"]
    # Refused before anything left the gateway; no use taken; the denial is audited.
    assert demo_upstream.requests == []
    assert consent_row(stack.gateway.app, consent_id) == ("active", 0)
    [denied] = audit_entries(stack.gateway.app, "decision.denied")
    assert denied["reason"] == reason
    stack.assert_no_temporary_files()


def test_a_denied_edit_never_reaches_the_upstream(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("face_swap",))
    end_consent(stack.gateway.app, consent_id, "withdrawn")
    response = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                          {"source": ("a.png", SOURCE, "image/png"), "target": ("b.jpg", TARGET, "image/jpeg")})
    assert response.status_code == 403
    assert response.json()["code"] == "consent_withdrawn"
    assert "Consent-Decision" not in response.headers
    assert demo_upstream.requests == []
    [denied] = audit_entries(stack.gateway.app, "decision.denied")
    assert denied["reason"] == "consent_withdrawn"
    stack.assert_no_temporary_files()


def test_the_exact_scope_is_checked_before_the_media_are_read(stack: Stack, demo_upstream: Capture) -> None:
    voice_only = make_app_client(stack.gateway.app, scope="edit:voice", name="Voice App")
    token = httpx.post(f"{stack.gateway.url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(voice_only.client_id, voice_only.secret)).json()["access_token"]
    response = httpx.post(
        f"{stack.gateway.url}/v1/edits", headers={"Authorization": f"Bearer {token}"},
        files={"request": (None, json.dumps({"operation": "face_swap", "algorithm": FILING, "consents": []}),
                           "application/json"),
               "source": ("a.png", SOURCE, "image/png")},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert audit_entries(stack.gateway.app, "decision.denied") == []
    stack.assert_no_temporary_files()


# --- the upstream fails: 502, a failed outcome, no temporary file left -------------------------------


def _failing(status: int) -> Any:
    @Request.application
    def app(request: Request) -> Response:
        request.get_data()
        return Response(json.dumps({"code": "model_crashed"}), status=status, content_type="application/json")

    return app


@pytest.mark.parametrize(("upstream", "code", "status"), [
    ("closed", "upstream_unreachable", None),
    ("500", "upstream_failed", 500),
    ("403", "upstream_refused", 403),
    ("hang", "upstream_timeout", None),
    # A URL stored before registration checked hosts: it cannot even be encoded for a request.
    ("unencodable", "upstream_unreachable", None),
])
def test_a_failing_upstream_gives_502_and_a_failed_outcome(
    *, stack: Stack, served: Callable[[Any], Served], upstream: str, code: str, status: int | None
) -> None:
    release = threading.Event()
    if upstream == "closed":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/edit"
    elif upstream == "hang":
        @Request.application
        def hang(request: Request) -> Response:
            request.get_data()
            release.wait(30)
            return Response("too late")

        url = served(hang).url + "/edit"
    elif upstream == "unencodable":
        url = "http://127.0.0.1:9/edit"
    else:
        url = served(_failing(int(upstream))).url + "/edit"
    register_algorithm(stack.gateway.app, FILING, upstream_url=url)
    if upstream == "unencodable":
        with stack.gateway.app.app_context(), db.unit_of_work() as session:
            session.execute(update(Algorithm).where(Algorithm.filing_number == FILING)
                            .values(upstream_url="http://.../edit"))
    consent_id = stack.consent(operations=("face_swap",))
    try:
        response = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                              {"source": ("a.png", SOURCE, "image/png")})
    finally:
        release.set()
    assert response.status_code == 502
    problem = response.json()
    assert problem["code"] == code
    assert problem["upstream_status"] == status
    if status is not None:
        assert problem["upstream_code"] == "model_crashed"
    decision_id = response.headers["Consent-Decision"]
    [failed] = audit_entries(stack.gateway.app, "decision.failed")
    assert failed["decision_id"] == decision_id
    assert failed["reason"] == code
    assert audit_entries(stack.gateway.app, "decision.completed") == []
    stack.assert_no_temporary_files()


# --- upload limits ----------------------------------------------------------------------------------


def _raw_request(url: str, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send ``head`` then ``chunks`` until the server answers; return the status line and headers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        for chunk in chunks:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server has answered before the body was complete
            except BlockingIOError:
                pass
            sock.setblocking(True)
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.setblocking(False)
        sock.setblocking(True)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


BOUNDARY = "cg-test-boundary"


def _multipart_head(consent_id: str) -> bytes:
    request = json.dumps({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]})
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{request}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"source\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()


def test_an_oversized_declared_upload_is_refused_before_it_is_read(stack: Stack, demo_upstream: Capture) -> None:
    stack.gateway.app.config["MAX_UPLOAD_MB"] = 1
    consent_id = stack.consent(operations=("face_swap",))
    declared = 64 * 1024 * 1024  # more than the socket buffers can swallow
    head = (f"POST /v1/edits HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {stack.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n").encode()
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        yield _multipart_head(consent_id)
        for _ in range(declared // 65536):
            sent.append(65536)
            yield b"\0" * 65536

    answer = _raw_request(stack.gateway.url, head, body())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sum(sent) < declared
    assert audit_entries(stack.gateway.app, "decision.allowed") == []
    assert demo_upstream.requests == []
    stack.assert_no_temporary_files()


def test_an_oversized_chunked_upload_is_cut_off_at_the_limit(stack: Stack, demo_upstream: Capture) -> None:
    stack.gateway.app.config["MAX_UPLOAD_MB"] = 1
    consent_id = stack.consent(operations=("face_swap",))
    head = (f"POST /v1/edits HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {stack.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        first = _multipart_head(consent_id)
        yield b"%x\r\n%s\r\n" % (len(first), first)
        for _ in range(1024):  # 64 MiB on offer; more than the socket buffers can swallow
            sent.append(65536)
            yield b"10000\r\n" + b"\0" * 65536 + b"\r\n"

    answer = _raw_request(stack.gateway.url, head, body())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sum(sent) < 64 * 1024 * 1024
    assert demo_upstream.requests == []
    stack.assert_no_temporary_files()


def test_a_small_enough_upload_passes_the_same_limit(stack: Stack, demo_upstream: Capture) -> None:
    stack.gateway.app.config["MAX_UPLOAD_MB"] = 1
    consent_id = stack.consent(operations=("face_swap",))
    response = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                          {"source": ("a.png", SOURCE, "image/png"), "target": ("b.jpg", TARGET, "image/jpeg")})
    assert response.status_code == 200


@pytest.mark.parametrize(("files", "content_type", "status", "code"), [
    ({"source": ("a.png", b"x", "image/png")}, None, 422, "validation_failed"),  # no request part
    ({"../../etc": ("a.png", b"x", "image/png")}, None, 400, "malformed_upload"),  # role is not a name
    ({}, "application/json", 415, "unsupported_media_type"),
])
def test_malformed_uploads_are_refused(
    *, stack: Stack, demo_upstream: Capture, files: dict[str, Any], content_type: str | None, status: int,
    code: str,
) -> None:
    url = f"{stack.gateway.url}/v1/edits"
    headers = {"Authorization": f"Bearer {stack.token}"}
    if content_type:
        response = httpx.post(url, headers={**headers, "Content-Type": content_type}, content=b"{}")
    else:
        response = httpx.post(url, headers=headers, files=files)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert demo_upstream.requests == []
    stack.assert_no_temporary_files()


def test_part_filenames_never_become_paths(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("face_swap",))
    response = stack.edit({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]},
                          {"source": ("../../../../tmp/evil.png", SOURCE, "image/png"),
                           "target": ("..\\..\\x.jpg", TARGET, "image/jpeg")})
    assert response.status_code == 200
    [(_headers, body)] = demo_upstream.requests
    assert b"../" not in body
    assert b'filename="tmp_evil.png"' in body
    stack.assert_no_temporary_files()


def test_output_transforms_see_the_edit_and_the_digest_covers_what_the_app_got(
    stack: Stack, demo_upstream: Capture
) -> None:
    seen: list[upstream.EditContext] = []

    def label(context: upstream.EditContext, output: upstream.Output) -> upstream.Output:
        # Stands in for the planned output labels: it sees the decision and rewrites the stream.
        seen.append(context)
        return upstream.Output(content_type=output.content_type, chunks=[*output.chunks, b"LABEL"],
                               headers={**output.headers, "Content-Disposition": "inline"})

    upstream.add_output_transform(stack.gateway.app, label)
    consent_id = stack.consent(operations=("face_attribute_edit",))
    response = stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]},
                          {"target": ("me.png", SOURCE, "image/png")})
    assert response.status_code == 200, response.text
    assert response.content.endswith(b"LABEL")
    assert response.headers["Content-Disposition"] == "inline"
    [context] = seen
    assert context.decision_id == response.headers["Consent-Decision"]
    assert context.media == {"target": hashlib.sha256(SOURCE).hexdigest()}
    [completed] = audit_entries(stack.gateway.app, "decision.completed")
    assert completed["output_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_the_demo_upstream_command_edits_for_the_gateway(stack: Stack, tmp_path: Path) -> None:
    """``consent-gateway demo-upstream`` on its own socket, registered the way the README does it."""
    port = free_port()
    env = {**os.environ, "CONSENT_GATEWAY_DATABASE_URL": stack.gateway.app.config["DATABASE_URL"],
           "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY}
    command = [str(Path(sys.executable).parent / "consent-gateway"), "demo-upstream", "--port", str(port),
               "--issuer", stack.gateway.url, "--filing-number", "DEMO-CLI-0001"]
    log = (tmp_path / "demo-upstream.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/edit"
        _wait_for_socket(port, process)
        assert httpx.post(url).json()["code"] == "ticket_missing"
        runner = stack.gateway.app.test_cli_runner()
        added = runner.invoke(main, ["algorithms", "add", "--name", "Demo", "--filing-number", "DEMO-CLI-0001",
                                     "--provider", "Consent Gateway", "--product", "demo",
                                     "--operations", "face_attribute_edit", "--upstream", url])
        assert added.exit_code == 0, added.output
        consent_id = stack.consent(operations=("face_attribute_edit",))
        response = stack.edit({"operation": "face_attribute_edit", "algorithm": "DEMO-CLI-0001",
                               "consents": [consent_id]}, {"target": ("me.jpg", TARGET, "image/jpeg")})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == Image.open(io.BytesIO(TARGET)).size
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for_socket(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "demo-upstream exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # a process starting up; there is nothing to wait on but the socket
    raise AssertionError("demo-upstream did not start")


def test_without_a_usable_signing_key_nothing_is_forwarded(
    stack: Stack, demo_upstream: Capture, gateway_server: Callable[..., LiveServer]
) -> None:
    # A second gateway on the same database whose master key cannot decrypt the signing key.
    broken = gateway_server(MASTER_KEY=base64.b64encode(b"x" * 32).decode(), UPLOAD_DIR=str(stack.upload_dir))
    consent_id = stack.consent(operations=("face_swap",))
    response = httpx.post(
        f"{broken.url}/v1/edits", headers={"Authorization": f"Bearer {stack.token}"},
        files={"request": (None, json.dumps({"operation": "face_swap", "algorithm": FILING,
                                             "consents": [consent_id]}), "application/json"),
               "source": ("a.png", SOURCE, "image/png")},
    )
    assert response.status_code == 503
    assert response.json()["code"] == "signing_key_unavailable"
    assert demo_upstream.requests == []
    assert consent_row(stack.gateway.app, consent_id) == ("active", 0)
    stack.assert_no_temporary_files()


def test_an_answer_closed_before_it_streamed_records_a_failed_outcome(stack: Stack, demo_upstream: Capture) -> None:
    consent_id = stack.consent(operations=("face_attribute_edit",))
    client = stack.gateway.app.test_client()
    request = json.dumps({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]})
    response = client.post("/v1/edits", headers={"Authorization": f"Bearer {stack.token}"}, buffered=False,
                           data={"request": request, "target": (io.BytesIO(SOURCE), "me.png", "image/png")})
    assert response.status_code == 200
    response.close()  # e.g. the client went away, or a middleware replaced the answer
    [failed] = audit_entries(stack.gateway.app, "decision.failed")
    assert failed["decision_id"] == response.headers["Consent-Decision"]
    assert failed["reason"] == "stream_interrupted"
    assert audit_entries(stack.gateway.app, "decision.completed") == []
    stack.assert_no_temporary_files()


def _raw_parts(request: dict[str, Any], parts: list[str]) -> bytes:
    """A multipart body with the request part and media parts whose Content-Disposition is given as is."""
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n"
            f"{json.dumps(request)}\r\n").encode()
    for disposition in parts:
        body += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n").encode()
        body += SOURCE + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("parts", [
    ['form-data; filename="me.png"'],  # no name: no role
    ['attachment; filename="me.png"'],
    [f'form-data; name="m{i}"; filename="m{i}.png"' for i in range(9)],  # more media than a decision names
])
def test_media_parts_without_a_role_or_too_many_are_malformed(
    stack: Stack, demo_upstream: Capture, parts: list[str],
) -> None:
    consent_id = stack.consent(operations=("face_swap",))
    response = httpx.post(f"{stack.gateway.url}/v1/edits", timeout=30,
                          headers={"Authorization": f"Bearer {stack.token}",
                                   "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                          content=_raw_parts({"operation": "face_swap", "algorithm": FILING,
                                              "consents": [consent_id]}, parts))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_upload"
    assert demo_upstream.requests == []
    assert consent_row(stack.gateway.app, consent_id) == ("active", 0)
    stack.assert_no_temporary_files()
