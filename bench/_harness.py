"""Shared by bench/decisions.py and bench/proxy.py: databases, production servers, load, figures.

Every server runs the way production runs it: gunicorn, gthread workers, on loopback, in its own
process; the load comes from separate processes so the client's GIL never throttles the server's.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _audit_db import temp_database  # noqa: E402  (bench/ is on sys.path when a bench script runs)

from gateway import create_app  # noqa: E402
from gateway.core.clock import utcnow  # noqa: E402
from gateway.core.db import db  # noqa: E402
from gateway.keys.keyring import key_store  # noqa: E402

MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 4  # gateway.core.server.run's default


def set_layout(workers: int, threads: int) -> None:
    """Serve both sides of a comparison as ``workers`` processes x ``threads`` threads (an experiment)."""
    global WORKERS, THREADS
    WORKERS, THREADS = workers, threads


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def database(backend: str, pg_url: str) -> Iterator[str]:
    """A freshly migrated database: a SQLite file, or a new loopback PostgreSQL database dropped afterwards."""
    with temp_database(backend, pg_url) as url:
        yield url


def gateway_app(url: str, issuer: str) -> Any:
    app = create_app({"DATABASE_URL": url, "MASTER_KEY": MASTER_KEY, "ISSUER": issuer,
                      "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"})
    with app.app_context(), db.unit_of_work() as session:
        if key_store().active(session) is None:
            key_store().create(session, utcnow())
    return app


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def peak_rss_mib(self) -> float:
        """The largest peak resident set (VmHWM) among the workers."""
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)


@contextlib.contextmanager
def gateway_server(url: str, port: int, *, workers: int | None = None, **config: Any) -> Iterator[Server]:
    """``consent-gateway serve`` on ``url``; WORKERS x THREADS unless ``workers`` is given (see set_layout)."""
    workers = workers or WORKERS
    env = {**os.environ, "CONSENT_GATEWAY_DATABASE_URL": url, "CONSENT_GATEWAY_MASTER_KEY": MASTER_KEY,
           "CONSENT_GATEWAY_ISSUER": f"http://127.0.0.1:{port}", "CONSENT_GATEWAY_SECRET_KEY": "bench",
           "CONSENT_GATEWAY_LOG_LEVEL": "WARNING",
           **{f"CONSENT_GATEWAY_{k}": str(v) for k, v in config.items()}}
    command = [str(BIN / "consent-gateway"), "serve", "--port", str(port), "--workers", str(workers),
               "--threads", str(THREADS)]
    with _process(command, env, port, workers) as server:
        yield server


@contextlib.contextmanager
def wsgi_server(target: str, port: int, *, workers: int | None = None, env: dict[str, str] | None = None
                ) -> Iterator[Server]:
    """Any WSGI app (``module:app``) under gunicorn with the options gateway/core/server.py uses."""
    workers = workers or WORKERS
    command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(THREADS), "--timeout", "120",
               "--graceful-timeout", "20", "--keep-alive", "5", "--limit-request-field_size", "8190",
               "--limit-request-fields", "100", "--chdir", str(ROOT), target]
    with _process(command, {**os.environ, **(env or {})}, port, workers) as server:
        yield server


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], port: int, workers: int) -> Iterator[Server]:
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError, OSError):
                if (httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
                        and len(server.worker_pids()) == workers):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    # CPU seconds (user + system) used during the measured phase, by role: "load generator" and
    # whatever the caller asked to watch (gateway workers, the database server).
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def cpu_ms_per_request(self) -> dict[str, float]:
        done = max(1, self.requests + self.errors)
        return {role: round(seconds * 1000 / done, 3) for role, seconds in self.cpu_seconds.items()}

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "rps": round(self.throughput, 1),
                "p50_ms": round(self.percentile(50), 2), "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2),
                "cpu_cores": {role: round(s / self.seconds, 2) for role, s in self.cpu_seconds.items()},
                "cpu_ms_per_request": self.cpu_ms_per_request()}


Request = tuple[str, str, dict[str, str], Any]  # method, path, headers, json body

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def encode(host: str, request: Request) -> bytes:
    """The request's exact bytes, built once: HTTP/1.1, keep-alive, a JSON body."""
    method, path, headers, body = request
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: */*", "Connection: keep-alive",
             *(f"{k}: {v}" for k, v in headers.items())]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class _Connection:
    """One keep-alive connection; a blocking socket and a small read buffer (the GIL is released in recv)."""

    def __init__(self, address: tuple[str, int], *, keep_body: bool = False) -> None:
        self.address = address
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.keep_body = keep_body  # keep the last answer's body in ``body`` (for a follow-up request)
        self.body = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return sock

    def exchange(self, data: bytes) -> int:
        """Send ``data`` and read one whole response; returns its status (reconnects once if closed)."""
        for attempt in (0, 1):
            if self.sock is None:
                self.sock = self._connect()
            try:
                self.sock.sendall(data)
                return self._response()
            except (ConnectionError, _Closed):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _response(self) -> int:
        assert self.sock is not None
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buffer[:end]
        status = int(head[9:12])
        length = 0
        keep = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        total = end + 4 + length
        while len(self.buffer) < total:
            self._fill()
        if self.keep_body:
            self.body = self.buffer[end + 4:total]
        self.buffer = self.buffer[total:]
        if not keep:
            self.close()
        return status

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Closed(Exception):
    pass


# Makes a second request from the first one's answer body (e.g. an id it created); it must be a module-level
# function, since it is sent to the load processes.
FollowUp = Callable[[bytes], Request]


def _drive(base_url: str, requests: list[Request], threads: int, seconds: float, expect: int, *,
           follow: FollowUp | None = None) -> tuple[list[float], int, float]:
    """One load process: ``threads`` closed-loop clients; returns latencies, errors and its own CPU seconds.

    With ``follow``, each operation is two requests on the same connection, the second made from the
    first's answer; both must answer ``expect`` and the latency is that of the pair.
    """
    parts = urlsplit(base_url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    encoded = [encode(parts.netloc, r) for r in requests]
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    cpu_before = sum(os.times()[:2])
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        connection = _Connection(address, keep_body=follow is not None)
        clock = time.perf_counter
        i = index
        try:
            while time.monotonic() < stop:
                data = encoded[i % len(encoded)]
                i += threads
                started = clock()
                try:
                    status = connection.exchange(data)
                    if follow is not None and status == expect:
                        status = connection.exchange(encode(parts.netloc, follow(connection.body)))
                except OSError:
                    status = 0
                elapsed = (clock() - started) * 1000
                if status == expect:
                    mine.append(elapsed)
                else:
                    failed += 1
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, errors, sum(os.times()[:2]) - cpu_before


def load(base_url: str, requests: list[Request], *, processes: int, threads: int, seconds: float,
         expect: int = 200, warmup: float = 2.0, watch: dict[str, Callable[[], list[int]]] | None = None,
         measuring: Callable[[float], Any] | None = None, follow: FollowUp | None = None) -> Load:
    """Closed-loop load: ``processes`` x ``threads`` clients, each sending its next request on an answer.

    The clients are raw keep-alive sockets sending pre-encoded bytes (no HTTP library per request), so the
    load generator costs a few tens of microseconds a request and does not set the ceiling. ``watch``
    maps a role to a function listing its pids (read after the warm-up); their CPU is reported per role.
    ``measuring(seconds)`` is called as the measured phase starts (e.g. to start a profiler). ``follow``
    makes each operation two requests (see ``_drive``).
    """
    drive = functools.partial(_drive, follow=follow)
    with ProcessPoolExecutor(processes) as pool:
        if warmup:
            list(pool.map(drive, *zip(*[(base_url, requests, threads, warmup, expect)] * processes,
                                      strict=True)))
        pids = {role: pids_of() for role, pids_of in (watch or {}).items()}
        before = {role: sum(cpu_seconds(p) for p in group) for role, group in pids.items()}
        if measuring is not None:
            measuring(seconds)
        started = time.monotonic()
        results = list(pool.map(drive, *zip(*[(base_url, requests, threads, seconds, expect)] * processes,
                                            strict=True)))
        elapsed = time.monotonic() - started
        used = {role: sum(cpu_seconds(p) for p in group) - before[role] for role, group in pids.items()}
    latencies = [x for lat, _, _ in results for x in lat]
    used["load generator"] = sum(cpu for _, _, cpu in results)
    return Load(requests=len(latencies), errors=sum(e for _, e, _ in results), seconds=elapsed,
                latencies_ms=latencies, cpu_seconds=used)


def postgres_backends(url: str) -> Callable[[], list[int]]:
    """The PostgreSQL server processes serving the bench database (its connections' backends)."""
    def pids() -> list[int]:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND pid <> pg_backend_pid()"))
                return [row.pid for row in rows]
        finally:
            engine.dispose()
    return pids


@dataclass(frozen=True)
class Run:
    """How to load a server: closed-loop clients, for how long, and what to record."""

    seconds: float
    clients: int = 16
    processes: int = 2
    profile: Path | None = None  # py-spy raw stacks of every gateway worker go here
    profile_idle: bool = True  # wall time (waiting included) rather than CPU samples only


def load_gateway(server: Server, url: str, backend: str, requests: list[Request], run: Run, *, expect: int,
                 name: str) -> Load:
    """``requests`` against the gateway, with its workers' (and PostgreSQL's) CPU, optionally profiled."""
    watch = {"gateway workers": lambda: [server.process.pid, *server.worker_pids()]}
    if backend == "postgresql":
        watch["database server"] = postgres_backends(url)
    profilers: list[subprocess.Popen[bytes]] = []

    def start_profiles(duration: float) -> None:
        if run.profile is None:
            return
        run.profile.mkdir(parents=True, exist_ok=True)
        for pid in server.worker_pids():
            # --idle: waiting (for the database, a lock, the GIL) counts too: wall time, not CPU.
            profilers.append(subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(duration)),
                 *(["--idle"] if run.profile_idle else []), "--threads", "--format", "raw", "--rate", "100",
                 # Without it py-spy stops the worker for every sample, and a stopped holder of SQLite's
                 # write lock stops every writer: the profile would show py-spy's own waits.
                 "--nonblocking",
                 "--output", str(run.profile / f"{name}-{backend}-worker-{pid}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    result = load(server.url, requests, processes=run.processes, threads=max(1, run.clients // run.processes),
                  seconds=run.seconds, expect=expect, watch=watch, measuring=start_profiles)
    for profiler in profilers:
        profiler.wait(timeout=60)
    return result


def load_bare(requests: list[Request], run: Run, *, expect: int) -> Load:
    """The same requests against ``bench/bare_app.py`` under the gateway's gunicorn options."""
    with wsgi_server("bench.bare_app:app", free_port()) as bare:
        return load(bare.url, requests, processes=run.processes, threads=max(1, run.clients // run.processes),
                    seconds=run.seconds, expect=expect,
                    watch={"bare workers": lambda: [bare.process.pid, *bare.worker_pids()]})


def report(results: list[dict[str, Any]], *, loadavg_before: tuple[float, float, float]) -> None:
    """JSON of everything, then the Markdown table and the CPU per request (docs/PERFORMANCE.md's shape)."""
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                  "loadavg_before": loadavg_before, "loadavg_after": os.getloadavg()},
                      "results": results}, indent=2))
    compared = [r for r in results if "ratio" in r or "floor_ratio" in r]
    if not compared:
        return
    gateways = [r for r in compared if "ratio" in r]
    if gateways:
        print()
        print("| database | endpoint | gateway req/s | p50 ms | p99 ms | bare Flask req/s | p50 ms | p99 ms | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
    for r in gateways:
        g, b = r["gateway"], r["bare_flask"]
        print(f"| {r['backend']} | {r['endpoint']} | {g['rps']} | {g['p50_ms']} | {g['p99_ms']} | {b['rps']} | "
              f"{b['p50_ms']} | {b['p99_ms']} | {r['ratio']} |")
    floors = [r for r in results if "floor_ratio" in r]
    if floors:
        print()
        print("| database | the floor (bench/floor_app.py) | req/s | p50 ms | p99 ms | ratio to bare Flask |")
        print("|---|---|---|---|---|---|")
        for r in floors:
            for side, name in (("floor", "Flask view"), ("floor_wsgi", "no framework")):
                f = r[side]
                print(f"| {r['backend']} | {name} | {f['rps']} | {f['p50_ms']} | {f['p99_ms']} | "
                      f"{r[side + '_ratio']} |")
    print()
    print("CPU ms per request (cores used):")
    for r in compared:
        for side in ("gateway", "bare_flask", "floor", "floor_wsgi"):
            if side not in r:
                continue
            cores = r[side]["cpu_cores"]
            parts = [f"{role} {ms} ({cores[role]})" for role, ms in r[side]["cpu_ms_per_request"].items()]
            print(f"  {r['backend']} {r['endpoint']} {side}: " + ", ".join(parts))


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times
