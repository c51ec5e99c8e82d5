"""A stand-in algorithm for bench/proxy.py: reads the multipart upload and streams the media back.

Its work is the same whether the gateway or the client calls it, so the proxy's overhead is the
difference. It does not verify tickets (a direct call has none); the edit itself is out of scope.
Plain WSGI, so the uploaded file stays open until the answer has streamed (a Flask request would
close it when the view returns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.formparser import parse_form_data

CHUNK = 64 * 1024


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    _stream, _form, files = parse_form_data(environ)
    media = next(iter(files.values()))
    start_response("200 OK", [("Content-Type", media.content_type or "application/octet-stream")])

    def stream() -> Iterator[bytes]:
        try:
            while chunk := media.stream.read(CHUNK):
                yield chunk
        finally:
            media.close()

    return stream()
