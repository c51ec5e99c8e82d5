"""A small witness that follows c2sp.org/tlog-witness (``add-checkpoint``) and c2sp.org/tlog-cosignature.

It trusts one log key, accepts the origins that start with a prefix (the gateway's log has one origin a
month), keeps the latest checkpoint it cosigned per origin, and answers as the spec says:

- 404 unknown origin; 403 no signature by the log's key; 400 malformed, or old size beyond the checkpoint;
- 409 with ``text/x.tlog.size`` when the old size is not the size it last cosigned (or the same size with
  another root); 422 when the consistency proof does not verify;
- 200 with its cosignature line otherwise, after recording the new checkpoint (check and update under one
  lock, as the spec requires).

``delay`` makes it slow (it sleeps before answering); ``stop`` makes it dead (connection refused).
"""

from __future__ import annotations

import base64
import binascii
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import ConsistencyProofError, FormatError, InvalidSignatureError, UnverifiedNoteError
from audit.rfc9162 import verify_consistency
from audit.signed_note import COSIGNATURE_V1, cosign, open_note, parse_checkpoint, parse_vkey, vkey_for

MAX_PROOF_LINES = 63


class Witness:
    def __init__(self, log_vkey: str, origin_prefix: str, name: str = "witness.test/w1",
                 clock: Any = time.time) -> None:
        self.log = parse_vkey(log_vkey)
        self.origin_prefix = origin_prefix
        self.name = name
        self._key = Ed25519PrivateKey.generate()
        self._public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.vkey = vkey_for(name, self._public, COSIGNATURE_V1)
        self.clock = clock
        self.delay = 0.0
        self.latest: dict[str, tuple[int, bytes]] = {}
        self.answers: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Witness:
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if witness.delay:
                    time.sleep(witness.delay)
                status, content_type, text = (404, "text/plain", "not found\n") if self.path != "/add-checkpoint" \
                    else witness.add_checkpoint(body)
                witness.answers.append(status)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def add_checkpoint(self, raw: bytes) -> tuple[int, str, str]:  # noqa: PLR0911 - one return per answer of the spec
        try:
            old, proof, note = _parse(raw)
            text, _ = open_note(note, [self.log])
            checkpoint = parse_checkpoint(text)
        except UnverifiedNoteError:
            return 403, "text/plain", "not signed by the log's key\n"
        except (FormatError, InvalidSignatureError, UnicodeDecodeError, ValueError) as exc:
            return 400, "text/plain", f"{exc}\n"
        if not checkpoint.origin.startswith(self.origin_prefix):
            return 404, "text/plain", "unknown log\n"
        if old > checkpoint.size:
            return 400, "text/plain", "old size beyond the checkpoint\n"
        with self._lock:
            size, root = self.latest.get(checkpoint.origin, (0, b""))
            if old != size:
                return 409, "text/x.tlog.size", f"{size}\n"
            if old == checkpoint.size and root != checkpoint.root:
                return 409, "text/x.tlog.size", f"{size}\n"
            if old == 0 and proof:
                return 400, "text/plain", "a proof from size 0 must be empty\n"
            if 0 < old < checkpoint.size:
                try:
                    verify_consistency(old, checkpoint.size, proof, root, checkpoint.root)
                except ConsistencyProofError as exc:
                    return 422, "text/plain", f"{exc}\n"
            self.latest[checkpoint.origin] = (checkpoint.size, checkpoint.root)
            line = cosign(text, self.name, self._key.sign, self._public, int(self.clock()))
        return 200, "text/plain", line


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A slow witness answers after the gateway gave up: that is the point of the test, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _parse(raw: bytes) -> tuple[int, list[bytes], str]:
    text = raw.decode("utf-8")
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError("no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old ") or not lines[0][4:].isdigit() or len(lines) - 1 > MAX_PROOF_LINES:
        raise FormatError("bad old size line or too many proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (binascii.Error, ValueError) as exc:
        raise FormatError("bad proof line") from exc
    return int(lines[0][4:]), proof, note
