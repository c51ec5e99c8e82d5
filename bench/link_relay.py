"""A TCP relay that delays every byte by a fixed time each way: the round trip of bench/proxy_link.py's link.

    python bench/link_relay.py --delay-ms 10 [--quiet] --route NAME=LISTEN_HOST:LISTEN_PORT=TARGET_HOST:TARGET_PORT ...

It exists because this machine's kernel has no netem (docs/PERFORMANCE.md, "The edit proxy on a shaped
link"): the link's rate is shaped in the kernel (tbf on a veth pair) and its delay here, in user space.

Each accepted connection is held for one round trip, standing for the TCP handshake a real path would
cost, then connected to its target. Bytes read on either side are queued with the time they are due
(received + delay) and written once due: each chunk is delayed once, however many follow it, so the
throughput is the link's, not one chunk per delay. Reading one way stops while more than ``QUEUE_LIMIT``
bytes wait to be written that way, so a fast sender meets back-pressure as it would on a slow link.

On start it prints one JSON line, ``{"ready": {NAME: "host:port", ...}}`` (a listen port of 0 is chosen
by the kernel); then, unless ``--quiet``, one line per closed connection, with what it saw, in seconds:
``request_s`` (first request byte in → last one written to the target), ``turnaround_s`` (last request
byte written → first answer byte in: the target's time to answer) and ``answer_s`` (first answer byte in
→ last one written to the client), and the bytes each way.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import socket
from collections import deque
from dataclasses import dataclass

CHUNK = 64 * 1024
QUEUE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Route:
    name: str
    listen: tuple[str, int]
    target: tuple[str, int]


@dataclass
class _Seen:
    """One direction of one connection, as the relay saw it."""

    first_in: float | None = None
    last_out: float | None = None
    bytes: int = 0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def parse_route(text: str) -> Route:
    name, listen, target = text.split("=")
    return Route(name, _address(listen), _address(target))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, seen: _Seen) -> None:
    """Copy ``reader`` to ``writer``, each chunk written ``delay`` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue: deque[tuple[float, bytes]] = deque()
    arrived = asyncio.Event()  # a chunk was queued, or the sender finished
    room = asyncio.Event()  # the queue is under its limit again
    queued = 0
    finished = False

    async def receive() -> None:
        nonlocal queued, finished
        while chunk := await reader.read(CHUNK):
            now = loop.time()
            if seen.first_in is None:
                seen.first_in = now
            queue.append((now + delay, chunk))
            queued += len(chunk)
            arrived.set()
            while queued > QUEUE_LIMIT:
                room.clear()
                await room.wait()
        finished = True
        arrived.set()

    async def deliver() -> None:
        nonlocal queued
        while True:
            while not queue:
                if finished:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                arrived.clear()
                await arrived.wait()
            due, chunk = queue.popleft()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
            queued -= len(chunk)
            seen.bytes += len(chunk)
            seen.last_out = loop.time()
            if queued <= QUEUE_LIMIT:
                room.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(receive())
        group.create_task(deliver())


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _relay(route: Route, delay: float, quiet: bool, client_reader: asyncio.StreamReader,
                 client_writer: asyncio.StreamWriter) -> None:
    _no_delay(client_writer)
    await asyncio.sleep(2 * delay)  # the handshake's round trip
    request, answer = _Seen(), _Seen()
    try:
        target_reader, target_writer = await asyncio.open_connection(*route.target)
    except OSError:
        client_writer.close()
        return
    _no_delay(target_writer)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pump(client_reader, target_writer, delay, request))
            group.create_task(_pump(target_reader, client_writer, delay, answer))
    except* OSError:
        pass  # a side reset the connection; the other is closed below, as a router would
    finally:
        for writer in (client_writer, target_writer):
            writer.close()
    if not quiet:
        _report(route, request, answer)


def _report(route: Route, request: _Seen, answer: _Seen) -> None:
    def span(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round(end - start, 6)

    print(json.dumps({"route": route.name, "request_bytes": request.bytes, "answer_bytes": answer.bytes,
                      "request_s": span(request.first_in, request.last_out),
                      "turnaround_s": span(request.last_out, answer.first_in),
                      "answer_s": span(answer.first_in, answer.last_out)}), flush=True)


async def serve(routes: list[Route], delay: float, *, quiet: bool = False) -> None:
    servers = []
    ready = {}
    for route in routes:
        server = await asyncio.start_server(functools.partial(_relay, route, delay, quiet), *route.listen)
        host, port = server.sockets[0].getsockname()[:2]
        ready[route.name] = f"{host}:{port}"
        servers.append(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(json.dumps({"ready": ready}), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="added to each direction")
    parser.add_argument("--route", type=parse_route, action="append", required=True,
                        help="NAME=LISTEN_HOST:LISTEN_PORT=TARGET_HOST:TARGET_PORT")
    parser.add_argument("--quiet", action="store_true", help="no line per connection")
    args = parser.parse_args()
    asyncio.run(serve(args.route, args.delay_ms / 1000, quiet=args.quiet))


if __name__ == "__main__":
    main()
