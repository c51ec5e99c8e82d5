"""gunicorn, embedded: ``consent-gateway serve`` runs the same app the tests run.

Slow clients. A gthread worker gives each connection one of its few threads while it reads the
request line, the headers and (inside the app) the body, with blocking reads and no time limit: a
handful of connections sending a byte a second (slow-loris) would hold every thread forever and the
gateway would stop answering. gunicorn's ``timeout`` does not help (the worker's main thread keeps
reporting alive). So every connection here has a deadline, enforced by one watchdog thread per
worker that shuts the socket's read side when it passes: the blocked read returns at once, the
thread is freed, and the client gets a 408 (body) or a closed connection (headers).

- headers: ``HEADER_TIMEOUT_SECONDS`` from the moment the thread takes the connection;
- body: ``BODY_TIMEOUT_SECONDS`` plus the declared length at ``BODY_MIN_BYTES_PER_SECOND`` (a chunked
  body is allowed the upload limit's worth), ending once the body has been read. The view's own work
  (an edit waiting for its upstream, an export) and the answer are not limited here.

This bounds how long one connection can hold a thread; it cannot stop an attacker who opens new
connections as fast as old ones are cut. A buffering reverse proxy in front (nginx with
``client_header_timeout``/``client_body_timeout``) remains the production answer (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, json
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Watchdog:
    """Shuts the read side of sockets whose deadline has passed; one thread per worker process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self._cut: set[int] = set()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> int:
        """Watch ``sock``; returns the key to release it with (its descriptor, taken now: once the
        socket is closed its number may belong to another connection)."""
        fd = sock.fileno()
        with self._lock:
            self._deadlines[fd] = (time.monotonic() + seconds, sock)
            self._cut.discard(fd)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slow-client-watchdog", daemon=True)
                self._thread.start()
        return fd

    def release(self, fd: int) -> bool:
        """Stop watching; True if the deadline had passed and the socket was cut."""
        with self._lock:
            self._deadlines.pop(fd, None)
            cut = fd in self._cut
            self._cut.discard(fd)
            return cut

    def _run(self) -> None:
        while True:
            time.sleep(0.25)  # the granularity of every deadline; cheap, and nothing waits on it
            now = time.monotonic()
            with self._lock:
                overdue = [(fd, sock) for fd, (deadline, sock) in self._deadlines.items() if deadline <= now]
                for fd, _ in overdue:
                    del self._deadlines[fd]
                    self._cut.add(fd)
            for _, sock in overdue:
                # The blocked recv returns b"" at once; the write side stays open for the 408.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)


_WATCHDOG = _Watchdog()
_limits = {"header": 10.0}


class SlowClientWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with a deadline on reading each request's line and headers (see the module docstring)."""

    def handle(self, conn: Any) -> Any:
        fd = _WATCHDOG.watch(conn.sock, _limits["header"])
        try:
            return super().handle(conn)
        finally:
            _WATCHDOG.release(fd)


class _WatchedBody:
    """``wsgi.input`` that ends the body's deadline as soon as the whole body has been read."""

    def __init__(self, stream: Any, length: int | None, done: Callable[[], None]) -> None:
        self._stream = stream
        self._length = length  # None: chunked, ends when a read returns nothing
        self._received = 0
        self._done = done

    def _seen(self, data: bytes, asked: int | None) -> bytes:
        self._received += len(data)
        ended = not data and asked != 0
        if ended or (self._length is not None and self._received >= self._length):
            self._done()
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._seen(self._stream.read(size), size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._seen(self._stream.readline(size), size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class BodyDeadline:
    """WSGI middleware: ends the header deadline, and gives the body (if any) its own deadline, which
    ends once the body has been read. The view's own work and the answer have no deadline here."""

    def __init__(self, app: WsgiApp, *, seconds: float, min_rate: float, unknown_length: int) -> None:
        self.app = app
        self.seconds = seconds
        self.min_rate = min_rate
        self.unknown_length = unknown_length

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket):
            return self.app(environ, start_response)
        _WATCHDOG.release(sock.fileno())  # the headers are in
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        length = int(declared) if declared.isdigit() else 0
        if length == 0 and not chunked:
            return self.app(environ, start_response)
        fd = _WATCHDOG.watch(sock, self.seconds + (self.unknown_length if chunked else length) / self.min_rate)
        state = {"released": False, "cut": False}

        def done() -> None:
            if not state["released"]:
                state["released"] = True
                state["cut"] = _WATCHDOG.release(fd)

        environ["wsgi.input"] = _WatchedBody(environ["wsgi.input"], None if chunked else length, done)
        started: list[Any] = []

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started.append((status, headers, exc_info))
            return None

        try:
            body = self.app(environ, remember)
        finally:
            done()  # a body the view did not read is drained by gunicorn, within its own bound
        if state["cut"]:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return _request_timeout(start_response)
        start_response(*started[0])
        return body


def _request_timeout(start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({
        "type": "https://consent-gateway.dev/problems/request_timeout", "title": "Request timeout",
        "status": 408, "code": "request_timeout",
        "detail": "the request body did not arrive in time; nothing was done",
    }).encode()
    start_response("408 Request Timeout", [("Content-Type", "application/problem+json"),
                                           ("Content-Length", str(len(body)))])
    return [body]


def with_deadlines(app: Flask) -> WsgiApp:
    """Wrap ``app`` for gunicorn with the configured slow-client limits."""
    config = app.config
    _limits["header"] = float(config["HEADER_TIMEOUT_SECONDS"])
    app.wsgi_app = BodyDeadline(  # type: ignore[method-assign]
        app.wsgi_app, seconds=float(config["BODY_TIMEOUT_SECONDS"]),
        min_rate=float(config["BODY_MIN_BYTES_PER_SECOND"]),
        unknown_length=int(config["MAX_UPLOAD_MB"]) * 1024 * 1024,
    )
    return app


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        from gateway import create_app

        # Each worker builds its own app (and engine) after the fork: connections are never shared.
        # Serving processes also run the audit ticker (leftover sequencing, month close, checkpoints).
        app = create_app({"AUDIT_BACKGROUND": True})
        with_deadlines(app)
        return app


METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def run(*, host: str, port: int, workers: int, threads: int = 4) -> None:
    """Serve in a fresh interpreter whose workers share one metrics directory (one scrape sums them all).

    prometheus-client chooses between process-local and shared (multiprocess) values when it is first
    imported, which in this process has already happened; the server therefore runs in a new one.
    """
    _require_free(host, port)
    metrics_dir = tempfile.mkdtemp(prefix="consent-gateway-metrics-")
    env = {**os.environ, METRICS_DIR: metrics_dir}
    # Imported by name (not run as __main__): the worker class gunicorn imports by name must be the same
    # module whose deadlines the workers' app loading sets.
    argv = [sys.executable, "-c", "import sys; from gateway.core.server import main; main(sys.argv[1:])",
            host, str(port), str(workers), str(threads)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own module, fixed argv


class PortInUse(OSError):
    """Someone already listens where the server was asked to."""


def _require_free(host: str, port: int) -> None:
    # gunicorn would retry for five seconds and print a line each time; one sentence is what helps.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror} (is a server already running there?)"
                            ) from None


def _child_exit(_server: Any, worker: Any) -> None:
    # A dead worker's live values are dropped; its counters stay in the sum (prometheus-client's rule).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _serve(host: str, port: int, workers: int, threads: int) -> None:
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gateway.core.server.SlowClientWorker",
            "threads": threads,
            # A worker whose threads are all stuck is restarted (the slow-client deadlines above
            # free threads long before this).
            "timeout": 120,
            "graceful_timeout": 20,
            "keepalive": 5,
            "limit_request_field_size": 8190,
            "limit_request_fields": 100,
            "accesslog": None,
            "child_exit": _child_exit,
        }
    ).run()


def main(argv: list[str]) -> None:
    if not os.environ.get(METRICS_DIR):
        sys.exit("run through `consent-gateway serve`")
    host, port, workers, threads = argv[:4]
    arbiter = os.getpid()
    try:
        _serve(host, int(port), int(workers), int(threads))
    finally:
        # Workers are forked from here and leave through this frame too; only the arbiter, last out,
        # removes the directory `run` made for their metrics.
        if os.getpid() == arbiter:
            shutil.rmtree(os.environ[METRICS_DIR], ignore_errors=True)

