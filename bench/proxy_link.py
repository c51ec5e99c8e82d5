"""The edit proxy as a user sees it: POST /v1/edits against the direct call over a 100 Mbit/s, 20 ms link.

    .venv/bin/python bench/proxy_link.py [--repeat 5] [--backend sqlite|postgresql]
                                         [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

As root (sudo if you are not), because it creates (and removes, whatever happens) a network namespace, a
veth pair and two qdiscs.

The client runs in its own network namespace; the link to the servers is a veth pair with ``tbf`` at
100 Mbit/s on both ends (each end shapes what it sends). This kernel has no netem, so the 10 ms each way
is added in user space by ``bench/link_relay.py``, in the namespace on the client's side of the veth:

    client ─ (namespace loopback) ─ relay, +10 ms each way ═ veth, tbf 100 Mbit/s ═ relay, 0 ms ─ server

The second relay, on the host end, only lets the servers keep listening on loopback; it also sees when the
last request byte reached the server and when its first answer byte left, which splits the time. Both
calls go through the same relays and veth: straight to ``bench/echo_upstream.py`` (**direct**), and
through the gateway (``POST /v1/edits``), which calls the same upstream on loopback. The upstream streams
the media back, so each byte crosses the link twice.

The media are those of bench/proxy.py (a 5 MB PNG and a 50 MB WAV, noise), sent as bytes the gateway does
not recognise, so it passes them unlabelled (``LABEL_UNSUPPORTED=pass``) and both calls move the same
bytes; the labelled PNG/WAV is timed too, for what a user sees with labels. They are not faces, so the
gateway runs with biometric binding off (``BINDING_MODALITIES=[]``). One request at a time; the calls
alternate, one of each per round. The same run reports the loopback figures (no namespace, no relay) and
what the two relays cost on loopback with no delay and no tbf.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from _harness import cpu_seconds
from proxy import MiB, _png, _send, _unlabellable, _wav, proxy_stack

HERE = Path(__file__).resolve().parent
RATE = "100mbit"
RATE_BITS = 100e6
DELAY_MS = 10.0  # each way: a 20 ms round trip
# tbf needs a bucket of at least one (GSO) packet; the queue holds 20 ms at the rate, as a router's might.
TBF = ("burst", "64kb", "latency", "20ms")
# A full frame on the veth (1514 bytes, which tbf counts) carries 1448 bytes of TCP payload (timestamps on).
FRAMING = 1514 / 1448
NAMESPACE_PREFIX = "cg-proxy-link-"
TARGET = 1.1


@dataclass(frozen=True)
class Edit:
    """One timed request: straight to the upstream or through ``POST /v1/edits``."""

    via_gateway: bool
    path: Path
    content_type: str
    labelled: bool = False


@dataclass(frozen=True)
class Timing:
    seconds: float
    first_byte_seconds: float  # from the start of the request to the answer's head, at the client
    turnaround_seconds: float | None = None  # at the server's end: last request byte in → first answer byte out


def _timed_edit(url: str, edit: Edit, headers: dict[str, str], request_part: str | None) -> Timing:
    started = time.perf_counter()
    head = _send(url, edit.path, edit.content_type, headers, request_part, labelled=edit.labelled)
    return Timing(seconds=time.perf_counter() - started, first_byte_seconds=head - started)


def _client() -> None:
    """``--client``: the namespace's client; one JSON job a line on stdin, one Timing a line on stdout."""
    for line in sys.stdin:
        job = json.loads(line)
        edit = Edit(job["via_gateway"], Path(job["path"]), job["content_type"], job["labelled"])
        timing = _timed_edit(job["url"], edit, job["headers"], job["request_part"])
        print(json.dumps(asdict(timing)), flush=True)


class _Lines:
    """JSON lines from a child's stdout, each awaited with a deadline (a stuck child fails the run)."""

    def __init__(self, process: subprocess.Popen[bytes], what: str) -> None:
        assert process.stdout is not None
        self.process, self.what, self.fd, self.buffer = process, what, process.stdout.fileno(), b""

    def next(self, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise RuntimeError(f"{self.what}: no answer in {timeout} s")
            if not (chunk := os.read(self.fd, 65536)):
                raise RuntimeError(f"{self.what} exited with {self.process.wait()}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


@dataclass
class Relay:
    process: subprocess.Popen[bytes]
    lines: _Lines
    addresses: dict[str, str]  # route name → "host:port" it listens on


@contextlib.contextmanager
def _child(command: list[str], what: str, *, stdin: bool = False) -> Iterator[tuple[subprocess.Popen[bytes], _Lines]]:
    process = subprocess.Popen(command, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, cwd=HERE.parent)
    try:
        yield process, _Lines(process, what)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def relay(routes: dict[str, tuple[str, str]], delay_ms: float, *, namespace: str | None = None,
          quiet: bool = False) -> Iterator[Relay]:
    """``bench/link_relay.py`` with ``routes`` (name → (listen, target)), in ``namespace`` if given."""
    command = [*(["ip", "netns", "exec", namespace] if namespace else []), sys.executable,
               str(HERE / "link_relay.py"), "--delay-ms", str(delay_ms), *(["--quiet"] if quiet else [])]
    for name, (listen, target) in routes.items():
        command += ["--route", f"{name}={listen}={target}"]
    with _child(command, "relay") as (process, lines):
        yield Relay(process, lines, lines.next(30)["ready"])


@dataclass(frozen=True)
class Link:
    namespace: str
    host_veth: str
    ns_veth: str
    subnet: str  # "10.213.N"

    @property
    def host_address(self) -> str:
        return f"{self.subnet}.1"

    @property
    def ns_address(self) -> str:
        return f"{self.subnet}.2"


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


def _remove_stale_links() -> None:
    """Namespaces a killed run (SIGKILL: no finally) left behind; their veth and qdiscs go with them."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for name in (line.split()[0] for line in listed.splitlines() if line.startswith(NAMESPACE_PREFIX)):
        pid = name.removeprefix(NAMESPACE_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], check=False)


def _free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    for step in range(250):
        subnet = f"10.213.{(os.getpid() + step) % 250 + 1}"
        if f" {subnet}." not in used:
            return subnet
    raise RuntimeError("no free 10.213.N.0/24 for the veth pair")


@contextlib.contextmanager
def shaped_link() -> Iterator[Link]:
    """A namespace joined to the host by a veth pair, tbf-shaped both ways; all of it removed on the way out."""
    pid = os.getpid()
    link = Link(f"{NAMESPACE_PREFIX}{pid}", f"cgl{pid}h", f"cgl{pid}n", _free_subnet())
    in_ns = ("ip", "-n", link.namespace)
    try:
        _run("ip", "netns", "add", link.namespace)
        _run("ip", "link", "add", link.host_veth, "type", "veth", "peer", "name", link.ns_veth,
             "netns", link.namespace)
        _run("ip", "addr", "add", f"{link.host_address}/24", "dev", link.host_veth)
        _run("ip", "link", "set", link.host_veth, "up")
        _run(*in_ns, "addr", "add", f"{link.ns_address}/24", "dev", link.ns_veth)
        _run(*in_ns, "link", "set", link.ns_veth, "up")
        _run(*in_ns, "link", "set", "lo", "up")  # the client reaches its relay on the namespace's loopback
        _run("tc", "qdisc", "add", "dev", link.host_veth, "root", "tbf", "rate", RATE, *TBF)
        _run("tc", "-n", link.namespace, "qdisc", "add", "dev", link.ns_veth, "root", "tbf", "rate", RATE, *TBF)
        yield link
    finally:
        # Deleting one end of a veth pair deletes both, and their qdiscs; the namespace goes last. Each step
        # runs even if an earlier one failed or was never reached.
        for command in (["tc", "qdisc", "del", "dev", link.host_veth, "root"],
                        ["ip", "link", "del", link.host_veth],
                        ["ip", "netns", "del", link.namespace]):
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _link_removed(link: Link) -> bool:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    device = subprocess.run(["ip", "link", "show", link.host_veth], capture_output=True, check=False)
    return link.namespace not in listed and device.returncode != 0


Send = Callable[[str, Edit], Timing]  # (base URL, edit) → its timing


@dataclass
class Calls:
    """Everything a request needs besides its base URL, and where each kind of call goes."""

    auth: dict[str, str]
    request_part: str

    def url(self, base: str, edit: Edit) -> str:
        return f"{base}/v1/edits" if edit.via_gateway else f"{base}/edit"

    def args(self, edit: Edit) -> tuple[dict[str, str], str | None]:
        return (self.auth, self.request_part) if edit.via_gateway else ({}, None)


def _series(timings: list[Timing]) -> dict[str, float | None]:
    turnarounds = [t.turnaround_seconds for t in timings if t.turnaround_seconds is not None]
    return {"min_ms": round(min(t.seconds for t in timings) * 1000, 1),
            "median_ms": round(statistics.median(t.seconds for t in timings) * 1000, 1),
            "first_byte_median_ms": round(statistics.median(t.first_byte_seconds for t in timings) * 1000, 1),
            "server_turnaround_median_ms": (round(statistics.median(turnarounds) * 1000, 1)
                                            if turnarounds else None)}


# (name, base URL, edit, the relay at the server's end of the path if there is one: it reports each connection)
Call = tuple[str, str, Edit, Relay | None]


def _rounds(plan: list[Call], send: Send, repeat: int) -> dict[str, dict[str, float | None]]:
    """``plan`` ``repeat`` times, one of each per round, so that a neighbour's load (a shared machine) weighs
    on all of them alike."""
    timings: dict[str, list[Timing]] = {name: [] for name, _, _, _ in plan}
    for _ in range(repeat):
        for name, base, edit, server_side in plan:
            timing = send(base, edit)
            if server_side is not None:
                timing = Timing(timing.seconds, timing.first_byte_seconds,
                                server_side.lines.next()["turnaround_s"])
            timings[name].append(timing)
    return {name: _series(series) for name, series in timings.items()}


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that every ``finally`` (servers, relays, the link) runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)  # the namespace's side
    args = parser.parse_args()
    if args.client:
        _client()
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/proxy_link.py needs root: it creates a network namespace, a veth pair and qdiscs")
    signal.signal(signal.SIGTERM, _interrupted)
    _remove_stale_links()
    loadavg_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cg-bench-proxy-link-") as folder:
        work = Path(folder)
        media = [("5 MB image (PNG, noise)", _png(work / "portrait.png", 5 * MiB), "image/png"),
                 ("50 MB audio (WAV, noise)", _wav(work / "voice.wav", 50 * MiB), "audio/wav")]
        uploads = work / "uploads"
        uploads.mkdir()
        with proxy_stack(args.backend, args.pg_url, uploads, BINDING_MODALITIES="[]") as (up, gateway, auth,
                                                                                          request_part):
            calls = Calls(auth, request_part)
            servers = {"upstream": up.url.removeprefix("http://"), "gateway": gateway.url.removeprefix("http://")}
            results = _measure(media, calls, servers, args.repeat)
        leftovers = list(uploads.iterdir())
    _print(results, args, loadavg_before, leftovers)


def _measure(media: list[tuple[str, Path, str]], calls: Calls, servers: dict[str, str],
             repeat: int) -> list[dict[str, Any]]:
    def local(base: str, edit: Edit) -> Timing:
        return _timed_edit(calls.url(base, edit), edit, *calls.args(edit))

    rows: list[dict[str, Any]] = []
    # Loopback: the figures of bench/proxy.py, and the same calls through the two relays with no delay.
    with relay({name: ("127.0.0.1:0", address) for name, address in servers.items()}, 0) as server_side, \
            relay({name: ("127.0.0.1:0", server_side.addresses[name]) for name in servers}, 0,
                  quiet=True) as client_side:
        direct, through = f"http://{servers['upstream']}", f"http://{servers['gateway']}"
        relayed_direct = f"http://{client_side.addresses['upstream']}"
        relayed_through = f"http://{client_side.addresses['gateway']}"
        warm = _unlabellable(media[0][1])  # warm-up: imports, connection pools, the page cache
        _rounds([(base, base, Edit(base in (through, relayed_through), warm, media[0][2]),
                  server_side if base in (relayed_direct, relayed_through) else None)
                 for base in (direct, through, relayed_direct, relayed_through)], local, 1)
        for label, path, content_type in media:
            twin = _unlabellable(path)
            plain, gated = Edit(False, twin, content_type), Edit(True, twin, content_type)
            figures = _rounds([("direct", direct, plain, None), ("gateway", through, gated, None),
                               ("direct, via the relays", relayed_direct, plain, server_side),
                               ("gateway, via the relays", relayed_through, gated, server_side)], local, repeat)
            rows.append({"link": "loopback", "media": label, "bytes": path.stat().st_size, "calls": figures})
    with shaped_link() as link:
        host = {name: (f"{link.host_address}:0", address) for name, address in servers.items()}
        with relay(host, 0) as server_side, \
                relay({name: ("127.0.0.1:0", server_side.addresses[name]) for name in servers}, DELAY_MS,
                      namespace=link.namespace, quiet=True) as client_side, \
                _child(["ip", "netns", "exec", link.namespace, sys.executable, str(Path(__file__).resolve()),
                        "--client"], "namespace client", stdin=True) as (client, answers):
            assert client.stdin is not None
            stdin = client.stdin

            def remote(base: str, edit: Edit) -> Timing:
                headers, part = calls.args(edit)
                stdin.write(json.dumps({"url": calls.url(base, edit), "path": str(edit.path),
                                        "content_type": edit.content_type, "labelled": edit.labelled,
                                        "via_gateway": edit.via_gateway, "headers": headers,
                                        "request_part": part}).encode() + b"\n")
                stdin.flush()
                return Timing(**answers.next(timeout=600))

            direct = f"http://{client_side.addresses['upstream']}"
            through = f"http://{client_side.addresses['gateway']}"
            warm = _unlabellable(media[0][1])
            _rounds([(base, base, Edit(base == through, warm, media[0][2]), server_side)
                     for base in (direct, through)], remote, 1)
            relays = [server_side.process.pid, client_side.process.pid]
            for label, path, content_type in media:
                twin = _unlabellable(path)
                cpu_before, started = sum(cpu_seconds(p) for p in relays), time.monotonic()
                figures = _rounds([("direct", direct, Edit(False, twin, content_type), server_side),
                                   ("gateway", through, Edit(True, twin, content_type), server_side),
                                   ("gateway, labelled", through, Edit(True, path, content_type, labelled=True),
                                    server_side)], remote, repeat)
                cores = (sum(cpu_seconds(p) for p in relays) - cpu_before) / (time.monotonic() - started)
                size = path.stat().st_size
                floor = 2 * size * 8 * FRAMING / RATE_BITS + 4 * DELAY_MS / 1000
                rows.append({"link": f"{RATE} tbf, {2 * DELAY_MS:g} ms round trip (relay)", "media": label,
                             "bytes": size, "calls": figures, "relays_cpu_cores": round(cores, 3),
                             "line_rate_floor_ms": round(floor * 1000, 1)})
    removed = _link_removed(link)
    for row in rows:
        row["link_removed"] = removed
    return rows


def _print(rows: list[dict[str, Any]], args: argparse.Namespace, loadavg_before: tuple[float, float, float],
           leftovers: list[Path]) -> None:
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                  "loadavg_before": loadavg_before, "loadavg_after": os.getloadavg()},
                      "backend": args.backend, "repeat": args.repeat, "binding": "off (BINDING_MODALITIES=[])",
                      "results": rows, "temporary_files_left": len(leftovers)}, indent=2))
    shaped = [r for r in rows if r["link"] != "loopback"]
    loopback = [r for r in rows if r["link"] == "loopback"]
    print(f"\nShaped link: {RATE} (tbf, both ways), {2 * DELAY_MS:g} ms round trip (bench/link_relay.py); "
          f"gateway with binding off (BINDING_MODALITIES=[]); median of {args.repeat}, min in brackets.")
    print("| media | direct ms | gateway ms | ratio | target | gateway, labelled ms | ratio | line-rate floor ms |")
    print("|---|---|---|---|---|---|---|---|")
    for row in shaped:
        c = row["calls"]
        d, g, lab = c["direct"], c["gateway"], c["gateway, labelled"]
        ratio = g["median_ms"] / d["median_ms"]
        print(f"| {row['media']} | {d['median_ms']} ({d['min_ms']}) | {g['median_ms']} ({g['min_ms']}) "
              f"| **{ratio:.2f}** | {'met' if ratio <= TARGET else 'not met'} (<= {TARGET}) "
              f"| {lab['median_ms']} ({lab['min_ms']}) | {lab['median_ms'] / d['median_ms']:.2f} "
              f"| {row['line_rate_floor_ms']} |")
    print("\nWhere the time goes on the shaped link (medians, ms): first answer byte at the client after the "
          "request began; at the server's end of the link, last request byte in → first answer byte out.")
    print("| media | call | total | first answer byte | server turnaround |")
    print("|---|---|---|---|---|")
    keys = ("median_ms", "first_byte_median_ms", "server_turnaround_median_ms")
    for row in shaped:
        calls = row["calls"]
        for name, s in calls.items():
            print(f"| {row['media']} | {name} | " + " | ".join(str(s[k]) for k in keys) + " |")
        added = (calls["gateway"][k] - calls["direct"][k] for k in keys)
        print(f"| {row['media']} | *gateway adds* | " + " | ".join(f"{a:+.1f}" for a in added) + " |")
    print("\nLoopback, same run (no namespace, no tbf, no delay):")
    print("| media | direct ms | gateway ms | ratio | direct via the relays ms | relays add "
          "| gateway via the relays ms | relays add |")
    print("|---|---|---|---|---|---|---|---|")
    for row in loopback:
        c = row["calls"]
        d, g = c["direct"], c["gateway"]
        rd, rg = c["direct, via the relays"], c["gateway, via the relays"]
        print(f"| {row['media']} | {d['median_ms']} ({d['min_ms']}) | {g['median_ms']} ({g['min_ms']}) "
              f"| {g['median_ms'] / d['median_ms']:.2f} | {rd['median_ms']} | {rd['median_ms'] - d['median_ms']:+.1f} "
              f"| {rg['median_ms']} | {rg['median_ms'] - g['median_ms']:+.1f} |")
    for row in shaped:
        print(f"\nrelays' CPU on the shaped link, {row['media']}: {row['relays_cpu_cores']} cores")
    print(f"namespace, veth and qdiscs removed: {'yes' if all(r['link_removed'] for r in rows) else 'NO'}; "
          f"temporary files left by the gateway: {len(leftovers)}")


if __name__ == "__main__":
    main()
