"""A realistic mix against one and two gateway servers on PostgreSQL, with the audit log reconciled after.

    python bench/load.py [--seconds 30] [--users 16] [--configs 1x1,1x2,2x1] [--profile]
                         [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each configuration ``SERVERSxWORKERS`` (e.g. ``2x1``: two ``consent-gateway serve`` processes with
one worker each) on a freshly created database: ``consent-gateway init``, four apps and the reference
upstream (``consent-gateway demo-upstream``, registered with ``consent-gateway algorithms add``). Then

1. decisions only, for a third of the time, against the gateway and against ``bench/bare_app.py``
   under the same gunicorn options and worker count (the yardstick: same requests, no work);
2. the mix: ``--users`` virtual apps each loop through: ask for consent, the person's portal flow over
   HTTP (code read from the outbox), three decisions, one proxy edit of a small PNG through the
   reference upstream, a withdrawal, and one more decision that must be denied; beside them an
   auditor exports the log every ten seconds. Requests alternate between the servers.

Afterwards ``consent-gateway audit export`` and ``audit verify`` must pass, and the bundle must hold
exactly one entry per action the driver saw succeed (setup actions included), action by action.
Reported: throughput and p50/p99 latency per kind, error counts, the CPU used by the driver, the
gateway processes and PostgreSQL. Loopback only; every loop stops at the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _harness import wsgi_server  # noqa: E402

from tests.e2e.cluster import GatewayProcess, cli, cluster_env, free_port, gateway_process  # noqa: E402

FILING = "LOAD-0001"
APPS = 4
DECISIONS_PER_FLOW = 3
EXPORT_EVERY = 10.0
NOT_SENT, NO_ANSWER = -2, -1
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Every subject comes from 127.0.0.1, so the per-address code limits would stop the run after 20.
LOAD_CONFIG = {"OTP_SEND_PER_IP": 10**9, "OTP_VERIFY_PER_IP": 10**9, "TOKEN_RATE_LIMIT_PER_MINUTE": 10**6,
               # One risk entry per app and window is correct behaviour but not a request the driver
               # made; a high threshold keeps the reconciliation one-to-one.
               "RISK_DENIALS_THRESHOLD": 10**9, "AUDIT_CHECKPOINT_EVERY": 1000}


def portrait() -> bytes:
    image = Image.new("RGB", (96, 128), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((24, 24, 72, 90), fill=(230, 190, 150))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


PORTRAIT = portrait()


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Latencies and outcomes per kind of request, and the actions the log must hold."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)  # sent, no answer: committed or not
    actions: Counter[str] = field(default_factory=Counter)  # audit actions the driver saw commit
    maybe_actions: Counter[str] = field(default_factory=Counter)  # ... or may have, without an answer
    error_codes: Counter[str] = field(default_factory=Counter)  # "kind status code" of unexpected answers
    allows_after_withdrawal: int = 0
    # (kind, sent, answered, status): status NOT_SENT when the connection was refused, NO_ANSWER when
    # the request left but no answer came back. bench/faults.py reads these against its fault windows.
    events: list[tuple[str, float, float, int]] = field(default_factory=list)

    async def call(self, kind: str, send: Callable[[], Awaitable[httpx.Response]], expect: tuple[int, ...],
                   actions: dict[int, list[str]] | None = None) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await send()
        except httpx.ConnectError:
            # Refused before a byte was sent (a server restarting): it cannot have committed.
            self.unknown[kind] += 1
            self.events.append((kind, started, time.perf_counter(), NOT_SENT))
            return None
        except httpx.TransportError:
            self.unknown[kind] += 1
            # It may have committed with any of its outcomes; the log may hold those entries or none.
            self.maybe_actions.update({name for names in (actions or {}).values() for name in names})
            self.events.append((kind, started, time.perf_counter(), NO_ANSWER))
            return None
        self.events.append((kind, started, time.perf_counter(), response.status_code))
        self.latencies[kind].append((time.perf_counter() - started) * 1000)
        self.statuses[kind][response.status_code] += 1
        if response.status_code not in expect:
            self.errors[kind] += 1
            self.error_codes[f"{kind} {response.status_code} {_problem_code(response)}"] += 1
        self.actions.update((actions or {}).get(response.status_code, []))
        return response

    def table(self, seconds: float) -> dict[str, dict[str, Any]]:
        rows = {}
        for kind in sorted(self.statuses):
            ordered = sorted(self.latencies[kind])
            rows[kind] = {
                "requests": sum(self.statuses[kind].values()), "per_s": round(len(ordered) / seconds, 1),
                "p50_ms": round(_pct(ordered, 50), 1), "p99_ms": round(_pct(ordered, 99), 1),
                "errors": self.errors[kind], "no_answer": self.unknown[kind],
                "statuses": dict(sorted(self.statuses[kind].items())),
            }
        return rows


def _problem_code(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    try:
        body = json.loads(response.content)
    except ValueError:
        return ""
    return "/".join(str(body[k]) for k in ("code", "upstream_code") if body.get(k))


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (and their reaped children), from /proc."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if Path(entry, "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
    return pids


def process_tree(root: int) -> list[int]:
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        with contextlib.suppress(OSError):
            queue += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return pids


# --- the deployment -------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(pg_url: str, name: str) -> Iterator[str]:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Deployment:
    env: dict[str, str]
    workdir: Path
    outbox: Path
    apps: list[dict[str, str]]
    servers: list[GatewayProcess]
    upstream: subprocess.Popen[bytes]
    upstream_command: list[str]
    setup_actions: Counter[str]


@contextlib.contextmanager
def deployment(database_url: str, workdir: Path, *, servers: int, workers: int,
               **config: Any) -> Iterator[Deployment]:
    """``init`` once, apps, the reference upstream as an algorithm, then the gateway servers."""
    outbox = workdir / "outbox"
    ports = [free_port() for _ in range(servers)]
    issuer = f"http://127.0.0.1:{ports[0]}"  # what the upstream trusts; every server signs as it
    env = cluster_env(database_url, outbox, ISSUER=issuer, **{**LOAD_CONFIG, **config})
    setup: Counter[str] = Counter()
    cli(env, "init")
    setup.update(["key.created"])
    apps = [cli(env, "clients", "create", "--name", f"Load App {i}", "--scope",
                "consent:read consent:write edit:face audit:export") for i in range(APPS)]
    setup.update(["client.created"] * APPS)
    upstream_port = free_port()
    cli(env, "algorithms", "add", "--name", "Reference editor", "--filing-number", FILING, "--provider", "CG",
        "--product", "demo", "--operations", "face_swap,face_attribute_edit",
        "--upstream", f"http://127.0.0.1:{upstream_port}/edit")
    setup.update(["algorithm.registered"])
    log = (workdir / "upstream.log").open("wb")
    command = [str(Path(sys.executable).parent / "consent-gateway"), "demo-upstream", "--port", str(upstream_port),
               "--issuer", issuer, "--filing-number", FILING]
    upstream = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deployed: Deployment | None = None
    try:
        with contextlib.ExitStack() as stack:
            started = [stack.enter_context(gateway_process(env, workdir, workers=workers, port=port))
                       for port in ports]
            wait_for(f"http://127.0.0.1:{upstream_port}/edit", upstream)
            deployed = Deployment(env, workdir, outbox, apps, started, upstream, command, setup)
            yield deployed
    finally:
        # The fault script may have replaced the upstream; stop whichever runs now.
        for process in (upstream, deployed.upstream if deployed is not None else upstream):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)
        log.close()


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


# --- the person reading their mail ------------------------------------------------------------------


class Outbox:
    """Codes from the outbox notifier's folder, indexed by recipient; files are removed once read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.codes: dict[str, str] = {}
        self.waiting: dict[str, asyncio.Future[str]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.scan()
            await asyncio.sleep(0.01)

    def scan(self) -> None:
        if not self.folder.exists():
            return
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            with contextlib.suppress(OSError, ValueError):
                message = json.loads(Path(entry.path).read_text("utf-8"))
                Path(entry.path).unlink()
                found = re.search(r"\b(\d{6})\b", message["text"])
                if found:
                    future = self.waiting.pop(message["to"], None)
                    if future is not None and not future.done():
                        future.set_result(found.group(1))
                    else:
                        self.codes[message["to"]] = found.group(1)

    async def code_for(self, contact: str, timeout: float = 30) -> str:
        if contact in self.codes:
            return self.codes.pop(contact)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting[contact] = future
        return await asyncio.wait_for(future, timeout)


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    return found.group(1) if found else ""


# --- the virtual users ---------------------------------------------------------------------------------


class Driver:
    def __init__(self, deployment: Deployment, stats: Stats, deadline: float) -> None:
        self.d = deployment
        self.stats = stats
        self.deadline = deadline
        self.outbox = Outbox(deployment.outbox)
        self.urls = [s.url for s in deployment.servers]
        self.turn = 0

    def url(self) -> str:
        # Round robin, the way a load balancer spreads one person's requests over the machines.
        self.turn += 1
        return self.urls[self.turn % len(self.urls)]

    async def token(self, http: httpx.AsyncClient, app: dict[str, str]) -> str | None:
        response = await self.stats.call("token", lambda: http.post(
            f"{self.url()}/oauth/token", data={"grant_type": "client_credentials"},
            auth=(app["client_id"], app["client_secret"])), (200,))
        return None if response is None or response.status_code != 200 else str(response.json()["access_token"])

    def decision_body(self, consent_id: str) -> dict[str, Any]:
        return {"operation": "face_swap", "algorithm": FILING, "consents": [consent_id],
                "media": [{"role": "source", "sha256": "ab" * 32}]}

    async def decide(self, http: httpx.AsyncClient, auth: dict[str, str], consent_id: str,
                     kind: str = "decision", expect: int = 201) -> httpx.Response | None:
        return await self.stats.call(kind, lambda: http.post(
            f"{self.url()}/v1/decisions", headers=auth, json=self.decision_body(consent_id)), (expect,),
            {201: ["decision.allowed"], 403: ["decision.denied"]})

    async def grant(self, request_id: str, contact: str,
                    operations: tuple[str, ...] = ("face_swap", "face_attribute_edit")) -> bool:
        """The person's browser: its own cookies, its own connections."""
        async with httpx.AsyncClient(timeout=60) as browser:
            def page() -> Awaitable[httpx.Response]:
                return browser.get(f"{self.url()}/consent/{request_id}")

            screen = await self.stats.call("portal_page", page, (200,))
            if screen is None or screen.status_code != 200:
                return False
            csrf = _field(screen.text, "csrf_token")
            sent = await self.stats.call("portal_code", lambda: browser.post(
                f"{self.url()}/consent/{request_id}/code", data={"csrf_token": csrf}),
                (303,), {303: ["code.sent"]})
            if sent is None or sent.status_code != 303:
                return False
            code = await self.outbox.code_for(contact)
            screen = await self.stats.call("portal_page", page, (200,))
            if screen is None or screen.status_code != 200:
                return False
            csrf = _field(screen.text, "csrf_token")
            checked = await self.stats.call("portal_verify", lambda: browser.post(
                f"{self.url()}/consent/{request_id}/verify",
                data={"csrf_token": csrf, "code": code}), (303,), {303: ["code.verified"]})
            if checked is None or checked.status_code != 303:
                return False
            notice = await self.stats.call("portal_page", page, (200,))
            if notice is None or notice.status_code != 200:
                return False
            form = {"csrf_token": _field(notice.text, "csrf_token"), "locale": _field(notice.text, "locale"),
                    "notice_sha256": _field(notice.text, "notice_sha256"),
                    "operations": list(operations), "action": "approve"}
            decided = await self.stats.call("portal_approve", lambda: browser.post(
                f"{self.url()}/consent/{request_id}/decision", data=form),
                (200,), {200: ["consent.granted"]})
            return decided is not None and decided.status_code == 200

    async def edit(self, http: httpx.AsyncClient, auth: dict[str, str], consent_id: str) -> None:
        request = json.dumps({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]})

        async def send() -> httpx.Response:
            response = await http.post(f"{self.url()}/v1/edits", headers=auth, files={
                "request": (None, request, "application/json"), "target": ("me.png", PORTRAIT, "image/png")})
            await response.aread()  # the outcome is committed before the last chunk leaves
            return response

        await self.stats.call("edit", send, (200,), {
            200: ["decision.allowed", "decision.completed"], 502: ["decision.allowed", "decision.failed"],
            403: ["decision.denied"]})

    async def user(self, number: int) -> None:
        app = self.d.apps[number % len(self.d.apps)]
        async with httpx.AsyncClient(timeout=60) as http:
            bearer = None
            flow = 0
            while time.monotonic() < self.deadline:
                if bearer is None:
                    bearer = await self.token(http, app)
                    if bearer is None:
                        continue
                flow += 1
                await self.flow(http, {"Authorization": f"Bearer {bearer}"}, f"u{number}-{flow}@load.test")

    async def flow(self, http: httpx.AsyncClient, auth: dict[str, str], contact: str) -> None:
        created = await self.stats.call("consent_request", lambda: http.post(
            f"{self.url()}/v1/consent-requests", headers=auth, json={
                "subject": {"contact": contact}, "operations": ["face_swap", "face_attribute_edit"],
                "purpose": "load test"}), (201,), {201: ["consent_request.created"]})
        if created is None or created.status_code != 201:
            # A server down or refusing: back off a little, as a real client would, instead of spinning.
            await asyncio.sleep(0.1)
            return
        request_id = created.json()["id"]
        if not await self.grant(request_id, contact):
            return
        read = await self.stats.call("read_request", lambda: http.get(
            f"{self.url()}/v1/consent-requests/{request_id}", headers=auth), (200,))
        if read is None or read.status_code != 200:
            return
        consent_id = read.json()["consent_id"]
        for _ in range(DECISIONS_PER_FLOW):
            await self.decide(http, auth, consent_id)
        await self.edit(http, auth, consent_id)
        revoked = await self.stats.call("withdraw", lambda: http.post(
            f"{self.url()}/v1/consents/{consent_id}/revoke", headers=auth,
            json={"reason": "the person asked", "on_behalf_of_subject": True}), (200,), {200: ["consent.withdrawn"]})
        if revoked is not None and revoked.status_code == 200:
            after = await self.decide(http, auth, consent_id, kind="decision_after_withdrawal", expect=403)
            if after is not None and after.status_code == 201:
                self.stats.allows_after_withdrawal += 1

    async def auditor(self, since: str) -> None:
        app = self.d.apps[0]
        async with httpx.AsyncClient(timeout=120) as http:
            bearer = await self.token(http, app)
            while bearer is not None and time.monotonic() + EXPORT_EVERY < self.deadline:
                await asyncio.sleep(EXPORT_EVERY)  # an auditor's pace, not an ordering
                await self.stats.call("export", lambda: _download(http, f"{self.url()}/v1/audit/export?since={since}",
                                                                  bearer), (200,), {200: ["audit.exported"]})

    async def decisions_only(self, http: httpx.AsyncClient, auth: dict[str, str], consent_id: str) -> None:
        # Allowed decisions on one consent each; the ids are the same for the bare yardstick.
        while time.monotonic() < self.deadline:
            await self.decide(http, auth, consent_id, kind="decision_only")


async def _download(http: httpx.AsyncClient, url: str, bearer: str) -> httpx.Response:
    response = await http.get(url, headers={"Authorization": f"Bearer {bearer}"})
    await response.aread()
    return response


@contextlib.asynccontextmanager
async def running_outbox(driver: Driver) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(driver.outbox.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def run_mix(dep: Deployment, stats: Stats, seconds: float, users: int) -> float:
    driver = Driver(dep, stats, time.monotonic() + seconds)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    started = time.monotonic()
    async with running_outbox(driver):
        await asyncio.gather(*(driver.user(i) for i in range(users)), driver.auditor(since))
    return time.monotonic() - started


async def bench_consents(dep: Deployment, stats: Stats, count: int) -> tuple[str, list[str]]:
    """Granted consents through the portal for the decisions-only phase, one per virtual user (as in
    bench/decisions.py: users deciding on one consent would queue on its row): (token, consent ids)."""
    driver = Driver(dep, stats, time.monotonic() + 120)
    async with running_outbox(driver), httpx.AsyncClient(timeout=60) as http:
        bearer = await driver.token(http, dep.apps[0])
        assert bearer is not None
        auth = {"Authorization": f"Bearer {bearer}"}

        async def one(number: int) -> str:
            contact = f"bench-{number}@load.test"
            created = await stats.call("consent_request", lambda: http.post(
                f"{driver.url()}/v1/consent-requests", headers=auth, json={
                    "subject": {"contact": contact}, "operations": ["face_swap"], "purpose": "bench"}),
                (201,), {201: ["consent_request.created"]})
            assert created is not None
            if not await driver.grant(created.json()["id"], contact, ("face_swap",)):
                raise RuntimeError(f"the portal flow failed: {dict(stats.statuses)}")
            read = await http.get(f"{driver.url()}/v1/consent-requests/{created.json()['id']}", headers=auth)
            return str(read.json()["consent_id"])

        return bearer, list(await asyncio.gather(*(one(i) for i in range(count))))


async def run_decisions(urls: list[str], stats: Stats, bearer: str, consent_ids: list[str], *, seconds: float,
                        users: int, dep: Deployment) -> float:
    driver = Driver(dep, stats, time.monotonic() + seconds)
    driver.urls = urls
    auth = {"Authorization": f"Bearer {bearer}"}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=users)) as http:
        await asyncio.gather(*(driver.decisions_only(http, auth, consent_ids[i % len(consent_ids)])
                               for i in range(users)))
    return time.monotonic() - started


# --- after the run: the log an auditor gets ---------------------------------------------------------------


def reconcile(dep: Deployment, stats: Stats) -> dict[str, Any]:
    bundle = dep.workdir / "bundle.zip"
    export = subprocess.run([str(Path(sys.executable).parent / "consent-gateway"), "audit", "export", "-o",
                             str(bundle)], check=False, env=dep.env, capture_output=True, timeout=600)
    # The auditor pins the gateway's verifier keys (as printed by `audit keys`), then verifies against them.
    keys = json.loads(subprocess.run([str(Path(sys.executable).parent / "consent-gateway"), "audit", "keys",
                                      "--json"], check=True, env=dep.env, capture_output=True, timeout=120).stdout)
    pinned = [arg for vkey in keys["vkeys"] for arg in ("--key", vkey)]
    verify = subprocess.run([str(Path(sys.executable).parent / "consent-gateway"), "audit", "verify", str(bundle),
                             *pinned, "--json"], check=False, env=dep.env, capture_output=True, timeout=600)
    found: Counter[str] = Counter()
    with zipfile.ZipFile(bundle) as archive:
        for name in archive.namelist():
            if name.endswith(".jsonl") and "/entries/" in name:
                for line in archive.read(name).splitlines():
                    found[json.loads(line)["action"]] += 1
    expected = stats.actions + dep.setup_actions
    expected["shard.opened"] += found["shard.opened"]  # one per month the log spans, by design
    maybe = Counter(stats.maybe_actions)
    # The CLI's own export is recorded just before the bundle is cut, at the range's exclusive end.
    maybe["audit.exported"] += 1
    rows = {}
    exact = True
    for action in sorted(set(found) | set(expected) | set(maybe)):
        low, high = expected[action], expected[action] + maybe[action]
        ok = low <= found[action] <= high
        exact = exact and ok
        rows[action] = {"driver_saw": low, "unanswered": maybe[action], "in_log": found[action], "ok": ok}
    return {"export_exit": export.returncode, "verify_exit": verify.returncode,
            "verify": _verify_summary(verify.stdout), "entries": sum(found.values()), "actions": rows,
            "one_entry_per_action": exact}


def _verify_summary(stdout: bytes) -> Any:
    try:
        report = json.loads(stdout)
    except ValueError:
        return stdout.decode(errors="replace")[-500:]
    return {k: report[k] for k in ("ok", "problems") if k in report} or report


# --- one configuration ---------------------------------------------------------------------------------


def run_config(pg_url: str, servers: int, workers: int, *, seconds: float, users: int,
               profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cg-load-") as folder, \
            fresh_database(pg_url, f"cg_load_{os.getpid()}") as url, \
            deployment(url, Path(folder), servers=servers, workers=workers) as dep:
        stats = Stats()
        # Set-up requests count for the audit reconciliation, not for the mix's rates.
        setup = Stats()
        bearer, consent_ids = asyncio.run(bench_consents(dep, setup, users))
        stats.actions.update(setup.actions)
        stats.maybe_actions.update(setup.maybe_actions)
        gateway_pids = [pid for s in dep.servers for pid in process_tree(s.process.pid)]
        # 1. decisions only: the gateway, then the bare Flask yardstick with the same workers.
        phase = max(5.0, seconds / 3)
        decisions = Stats()
        elapsed = asyncio.run(run_decisions([s.url for s in dep.servers], decisions, bearer, consent_ids,
                                            seconds=phase, users=users, dep=dep))
        stats.actions.update(decisions.actions)
        gateway_rate = len(decisions.latencies["decision_only"]) / elapsed
        bare_stats = Stats()
        with contextlib.ExitStack() as stack:
            bare = [stack.enter_context(wsgi_server("bench.bare_app:app", free_port(), workers=workers))
                    for _ in range(servers)]
            bare_elapsed = asyncio.run(run_decisions([b.url for b in bare], bare_stats, bearer, consent_ids,
                                                     seconds=phase, users=users, dep=dep))
        bare_rate = len(bare_stats.latencies["decision_only"]) / bare_elapsed
        # 2. the mix, measured: our CPU, the gateway's and PostgreSQL's.
        profiler = _start_profiler(dep, seconds) if profile else None
        before = (resource.getrusage(resource.RUSAGE_SELF), cpu_seconds(gateway_pids),
                  cpu_seconds(postgres_pids()))
        wall = asyncio.run(run_mix(dep, stats, seconds, users))
        after = (resource.getrusage(resource.RUSAGE_SELF), cpu_seconds(gateway_pids), cpu_seconds(postgres_pids()))
        profile_report = _finish_profiler(profiler) if profiler else None
        driver_cpu = (after[0].ru_utime + after[0].ru_stime) - (before[0].ru_utime + before[0].ru_stime)
        mix = stats.table(wall)
        mix.pop("decision_only", None)
        total = sum(row["requests"] for kind, row in mix.items())
        result = {
            "config": f"{servers}x{workers}", "servers": servers, "workers_per_server": workers,
            "decisions_only": {
                "gateway_per_s": round(gateway_rate, 1), "bare_flask_per_s": round(bare_rate, 1),
                "ratio": round(gateway_rate / bare_rate, 3),
                "gateway_p50_ms": round(statistics.median(decisions.latencies["decision_only"]), 1),
                "gateway_p99_ms": round(_pct(sorted(decisions.latencies["decision_only"]), 99), 1),
                "bare_p50_ms": round(statistics.median(bare_stats.latencies["decision_only"]), 1),
                "errors": decisions.errors["decision_only"]},
            "mix": {"seconds": round(wall, 1), "requests": total, "per_s": round(total / wall, 1),
                    "flows_completed": stats.statuses["withdraw"][200],
                    "errors": sum(stats.errors.values()), "error_codes": dict(stats.error_codes),
                    "no_answer": sum(stats.unknown.values()),
                    "allows_after_withdrawal": stats.allows_after_withdrawal, "kinds": mix},
            "cpu_seconds_per_wall_second": {
                "load_driver": round(driver_cpu / wall, 2),
                "gateway_processes": round((after[1] - before[1]) / wall, 2),
                "postgresql": round((after[2] - before[2]) / wall, 2)},
        }
        if profile_report:
            result["profile"] = profile_report
        result["audit"] = reconcile(dep, stats)
        return result


def _start_profiler(dep: Deployment, seconds: float) -> tuple[subprocess.Popen[bytes], Path] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("py-spy not installed; no profile", file=sys.stderr)
        return None
    worker = dep.servers[0].worker_pids()[0]
    out = dep.workdir / "profile.txt"
    duration = max(1, int(seconds) - 2)
    process = subprocess.Popen([py_spy, "record", "--pid", str(worker), "--duration", str(duration), "--rate", "200",
                                "--format", "raw", "--output", str(out), "--nonblocking", "--threads", "--idle"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, out


def _finish_profiler(profiler: tuple[subprocess.Popen[bytes], Path]) -> dict[str, Any]:
    process, out = profiler
    process.wait(timeout=120)
    return summarise_profile(out.read_text() if out.exists() else "")


def summarise_profile(collapsed: str) -> dict[str, Any]:
    """Where the worker's request threads spend their wall time (py-spy's collapsed stacks, idle
    samples included: a thread waiting for PostgreSQL is as busy, for the client, as one computing)."""
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "handle_request" not in stack:
            continue  # idle threads (poller, audit ticker sleeping, watchdog) are not request work
        samples = int(count)
        total += samples
        frames = stack.split(";")
        leaves[frames[-1].split(" (")[0]] += samples
        buckets[_bucket(stack)] += samples
        # The innermost frame of our own packages: which of our calls the time is spent under.
        own = [f for f in frames if re.search(r"\((gateway|consent|audit)/", f) and "server.py" not in f]
        if own:
            ours[own[-1].split(" (")[0] + " (" + own[-1].split(" (")[1].split(":")[0] + ")"] += samples
    share = {k: round(100 * v / total, 1) for k, v in buckets.most_common()} if total else {}
    top = [(name, round(100 * v / total, 1)) for name, v in leaves.most_common(12)] if total else []
    mine = [(name, round(100 * v / total, 1)) for name, v in ours.most_common(12)] if total else []
    return {"request_samples": total, "share_percent": share, "top_leaf_functions_percent": top,
            "innermost_own_function_percent": mine}


def _bucket(stack: str) -> str:
    # First match wins, in this order: the most specific attribution of where the time went.
    rules = [
        ("audit sequencer after commit (its queries included)", ("gateway/auditing/runner.py", "audit/sequencer.py")),
        ("upstream: waiting for the reference editor", ("gateway/proxy/upstream.py",)),
        ("commit (waiting for PostgreSQL's fsync)", (r"Session\.commit|_commit_impl|do_commit",)),
        ("other PostgreSQL round trips (psycopg)", ("psycopg/",)),
        ("Ed25519 signing / JWS", ("consent/jws.py", "signing.py", "keys.py")),
        ("upload parsing and hashing", ("gateway/proxy/uploads.py",)),
        ("template rendering (portal)", ("jinja2/",)),
        ("SQLAlchemy in Python (ORM, compiling)", ("sqlalchemy/",)),
        ("authlib (token checks)", ("authlib/",)),
        ("pydantic validation", ("pydantic",)),
        ("reading the request (gunicorn, werkzeug)", ("gunicorn/", "werkzeug/")),
        ("Flask dispatch", ("flask/",)),
    ]
    for label, needles in rules:
        if any(re.search(needle, stack) for needle in needles):
            return label
    return "other (our code, stdlib)"


# --- output ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the mix (max 600)")
    parser.add_argument("--users", type=int, default=16, help="concurrent virtual apps (max 64)")
    parser.add_argument("--configs", default="1x1,1x2,2x1", help="SERVERSxWORKERS, comma-separated")
    parser.add_argument("--profile", action="store_true", help="py-spy the first worker of the first config")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    seconds, users = min(args.seconds, 600.0), min(args.users, 64)
    results = []
    for index, config in enumerate(args.configs.split(",")):
        servers, workers = (int(x) for x in config.split("x"))
        print(f"== {servers} server(s) x {workers} worker(s), {seconds:.0f} s, {users} users", file=sys.stderr)
        results.append(run_config(args.pg_url, servers, workers, seconds=seconds, users=users,
                                  profile=args.profile and index == 0))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "seconds": seconds, "users": users, "results": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print_tables(results)


def print_tables(results: list[dict[str, Any]]) -> None:
    print("\n| servers x workers | mix req/s | flows | errors | allows after withdrawal | decisions/s | bare Flask/s | "
          "ratio | CPU/s driver | gateway | PostgreSQL | log verifies | 1 entry per action |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m, d, c, a = r["mix"], r["decisions_only"], r["cpu_seconds_per_wall_second"], r["audit"]
        print(f"| {r['config']} | {m['per_s']} | {m['flows_completed']} | {m['errors']} | "
              f"{m['allows_after_withdrawal']} | {d['gateway_per_s']} | {d['bare_flask_per_s']} | {d['ratio']} | "
              f"{c['load_driver']} | {c['gateway_processes']} | {c['postgresql']} | "
              f"{'yes' if a['verify_exit'] == 0 else 'NO'} | {'yes' if a['one_entry_per_action'] else 'NO'} |")
    for r in results:
        print(f"\n{r['config']}: latency per kind (ms)\n\n| kind | requests | per s | p50 | p99 | errors |")
        print("|---|---|---|---|---|---|")
        for kind, row in r["mix"]["kinds"].items():
            print(f"| {kind} | {row['requests']} | {row['per_s']} | {row['p50_ms']} | {row['p99_ms']} | "
                  f"{row['errors']} |")


if __name__ == "__main__":
    main()
