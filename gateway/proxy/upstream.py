"""Forwarding an allowed edit to the algorithm's upstream and streaming its answer back.

What an upstream receives (the contract a provider implements, see ``gateway/demo/upstream.py``)::

    POST <upstream_url>
    Consent-Ticket: <compact JWS, typ consent-ticket+jwt>      verify it with consent/ticket_verifier.py
    Consent-Decision: dec_…
    Content-Type: multipart/form-data
        part "request": application/json {"decision_id", "operation", "algorithm", "consents", "parameters"}
        one file part per media role ("source", "target", "audio", …), exactly the bytes the ticket hashes

Media are streamed from the gateway's temporary files and the answer is streamed back chunk by chunk,
so memory does not grow with either. The answer passes through the registered output transforms (the
place where output labels plug in: ``gateway.labels``, installed by :func:`init_app`) and is hashed as it
leaves, for the outcome's ``output_sha256``: the digest of what the app received, labels included.

The answer is sent without a Content-Length (chunked), on purpose: transforms may change its size, and
the final chunk leaves only after the outcome is recorded, so an app that has read the whole answer
knows its outcome is in the audit log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from flask import Flask, current_app

from gateway.core.errors import GatewayError
from gateway.proxy.uploads import REQUEST_PART, MediaPart

log = logging.getLogger(__name__)

__all__ = [
    "CONSENT_DECISION_HEADER",
    "CONSENT_TICKET_HEADER",
    "EditContext",
    "Output",
    "OutputRefused",
    "OutputTransform",
    "Relay",
    "Reply",
    "UpstreamError",
    "UpstreamFailed",
    "UpstreamRefused",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "add_output_transform",
    "forward",
    "init_app",
    "relay",
]

CONSENT_TICKET_HEADER = "Consent-Ticket"
CONSENT_DECISION_HEADER = "Consent-Decision"
_EXT = "consent_gateway.upstream"
# Large chunks both ways: per-chunk costs (syscalls, WSGI writes, chunked framing) dominate below this.
_RELAY_CHUNK = 256 * 1024
_FORWARD_CHUNK = 1024 * 1024
# How much of an upstream's error body is read to explain a refusal; the rest is dropped unread.
_ERROR_PEEK = 4096
# Headers of the upstream's answer that describe the content and may be passed to the app (an upstream
# that compresses despite "Accept-Encoding: identity" still gets its bytes read correctly).
_PASSED_HEADERS = ("content-disposition", "content-language", "content-encoding")


class UpstreamError(GatewayError):
    code: ClassVar[str] = "upstream_failed"

    def __init__(self, message: str, *, status: int | None = None, upstream_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.upstream_code = upstream_code


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamRefused(UpstreamError):
    """The upstream answered, but not with an edit (4xx, 3xx): e.g. it refused the ticket."""

    code = "upstream_refused"


class UpstreamFailed(UpstreamError):
    code = "upstream_failed"


class OutputRefused(UpstreamError):
    """The upstream answered with an edit that an output transform will not pass on (e.g. it cannot be
    labelled, ``gateway.labels``); subclasses name why in their ``code``."""

    code = "output_refused"


@dataclass(frozen=True)
class EditContext:
    """What an output transform may know about the edit it is labelling."""

    decision_id: str
    client_id: str
    operation: str
    algorithm: str
    consents: tuple[str, ...]
    media: Mapping[str, str]
    reference: str = ""  # the app's own id for the output, if it gave one


@dataclass(frozen=True)
class Output:
    """The edited media on its way to the app; a transform returns a new one (e.g. labelled chunks)."""

    content_type: str
    chunks: Iterable[bytes]
    headers: Mapping[str, str] = field(default_factory=dict)


OutputTransform = Callable[[EditContext, Output], Output]


@dataclass
class _State:
    client: httpx.Client
    transforms: list[OutputTransform]


@dataclass
class Reply:
    """An upstream's 2xx answer whose body has not been read yet."""

    response: httpx.Response

    def output(self) -> Output:
        return Output(
            content_type=self.response.headers.get("content-type", "application/octet-stream"),
            chunks=self.response.iter_raw(_RELAY_CHUNK),
            headers={k: v for k in _PASSED_HEADERS if (v := self.response.headers.get(k)) is not None},
        )

    def close(self) -> None:
        self.response.close()


def init_app(app: Flask) -> None:
    timeout = float(app.config["UPSTREAM_TIMEOUT_SECONDS"])
    client = httpx.Client(
        # Connecting is quick or the upstream is down; reading may take as long as an edit takes.
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        follow_redirects=False,
        # Upstreams are named by operators, not by the environment; never route media via a proxy.
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    app.extensions[_EXT] = _State(client=client, transforms=[])
    # Every edited output is labelled (GB 45438-2025) before anything else sees it: installed with the
    # proxy itself, so no app can run the proxy without it. Imported here: gateway.labels imports this module.
    from gateway.labels import transform as labels

    labels.init_app(app)


def add_output_transform(app: Flask, transform: OutputTransform) -> None:
    """Register a transform applied, in order, to every edited output before it reaches the app."""
    _state(app).transforms.append(transform)


def forward(
    url: str, *, ticket: str, context: EditContext, parameters: Mapping[str, Any] | None,
    parts: Mapping[str, MediaPart], request_id: str | None = None,
) -> Reply:
    """Send the media to the upstream; return its 2xx answer unread, or raise :class:`UpstreamError`."""
    state = _state(current_app)
    request_part = json.dumps({
        "decision_id": context.decision_id,
        "operation": context.operation,
        "algorithm": context.algorithm,
        "consents": list(context.consents),
        "parameters": dict(parameters or {}),
    }).encode()
    body = _Multipart(request_part, list(parts.values()))
    headers = {CONSENT_TICKET_HEADER: ticket, CONSENT_DECISION_HEADER: context.decision_id,
               "Content-Type": body.content_type, "Content-Length": str(body.length),
               # Identity, so the bytes relayed (and hashed) are the bytes the upstream produced.
               "Accept-Encoding": "identity"}
    if request_id:
        headers["X-Request-Id"] = request_id
    try:
        request = state.client.build_request("POST", url, content=body.chunks(), headers=headers)
        response = state.client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"the upstream did not answer in time ({type(exc).__name__})") from exc
    except (httpx.HTTPError, httpx.InvalidURL, UnicodeError, ValueError) as exc:
        # A URL stored before registration checked hosts and ports fails to parse or encode here.
        raise UpstreamUnreachable(f"the upstream cannot be reached ({type(exc).__name__})") from exc
    if 200 <= response.status_code < 300:
        return Reply(response)
    raise _refusal(response)


def relay(
    reply: Reply, context: EditContext, on_done: Callable[[bool, str | None], None]
) -> tuple[Output, Relay]:
    """The transformed output and the :class:`Relay` that streams it to the app."""
    output = reply.output()
    try:
        for transform in _state(current_app).transforms:
            output = transform(context, output)
    except UpstreamError:
        # A transform refused the output, or the upstream's answer broke off while a transform read it:
        # nothing has reached the app, so the caller answers 502 and records the failure with the code.
        reply.close()
        raise
    except BaseException:
        reply.close()
        on_done(False, None)
        raise
    return output, Relay(reply, output, on_done)


class Relay:
    """Streams the output, hashing it; ``on_done(completed, sha256)`` runs exactly once.

    From the end of :meth:`chunks` when the stream completes or breaks, or from :meth:`close` when the
    server (or a middleware) closes the response first; a generator alone would miss a response
    closed before its first chunk, and with it the outcome.
    """

    def __init__(self, reply: Reply, output: Output, on_done: Callable[[bool, str | None], None]) -> None:
        self._reply = reply
        self._output = output
        self._on_done = on_done
        self._digest = hashlib.sha256()
        self._finished = False

    def chunks(self) -> Iterator[bytes]:
        completed = False
        try:
            for chunk in self._output.chunks:
                self._digest.update(chunk)
                yield chunk
            completed = True
        except httpx.HTTPError:
            # Headers have left already; all that can be done is cut the stream and record the failure.
            log.warning("upstream stream broke off", exc_info=True)
            raise
        finally:
            # Runs before the last (terminating) chunk is written, so a complete answer means a
            # recorded outcome.
            self._finish(completed)

    def close(self) -> None:
        self._finish(False)

    def _finish(self, completed: bool) -> None:
        if self._finished:
            return
        self._finished = True
        # A transform's output may hold a resource of its own (a spooled file): WSGI's close() convention.
        close = getattr(self._output.chunks, "close", None)
        if callable(close):
            close()
        self._reply.close()
        self._on_done(completed, self._digest.hexdigest() if completed else None)


class _Multipart:
    """The upstream request body, streamed from the temporary files in large chunks.

    Built here rather than with httpx's ``files=`` because its encoder reads files 64 KiB at a time,
    which costs about a third of the proxy's throughput on large media; the length is known up front,
    so the upstream still gets a Content-Length and no chunked encoding.
    """

    def __init__(self, request_part: bytes, parts: list[MediaPart]) -> None:
        self.boundary = secrets.token_hex(16)
        self._parts = parts
        self._heads = [self._head(REQUEST_PART, None, "application/json")]
        self._heads += [self._head(p.role, p.filename, p.content_type) for p in parts]
        self._request_part = request_part
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        return (sum(len(h) for h in self._heads) + len(self._request_part) + sum(p.size for p in self._parts)
                + 2 * len(self._parts) + len(self._tail))

    def chunks(self) -> Iterator[bytes]:
        yield self._heads[0] + self._request_part
        for head, part in zip(self._heads[1:], self._parts, strict=True):
            yield b"\r\n" + head
            part.file.seek(0)
            while chunk := part.file.read(_FORWARD_CHUNK):
                yield chunk
        yield self._tail

    def _head(self, name: str, filename: str | None, content_type: str) -> bytes:
        # Names are roles and filenames are sanitised (gateway.proxy.uploads), so no quoting is needed.
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        return (f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {content_type}\r\n\r\n").encode()


def _refusal(response: httpx.Response) -> UpstreamError:
    try:
        peek = b""
        for chunk in response.iter_raw(_ERROR_PEEK):
            peek = chunk[:_ERROR_PEEK]
            break
    except httpx.HTTPError:
        peek = b""
    finally:
        response.close()
    upstream_code = None
    try:
        body = json.loads(peek)
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            upstream_code = body["code"][:64]
    except ValueError:
        pass
    status = response.status_code
    kind: type[UpstreamError] = UpstreamFailed if status >= 500 else UpstreamRefused
    return kind(f"the upstream answered {status}", status=status, upstream_code=upstream_code)


def _state(app: Flask) -> _State:
    state = app.extensions.get(_EXT)
    if not isinstance(state, _State):
        raise RuntimeError("gateway.proxy.upstream.init_app was not called for this app")
    return state
