"""RFC 9457 problem details: the single place where errors become HTTP.

Every non-OAuth error leaves the service as ``application/problem+json`` with a stable ``type``
URI and a machine ``code``. Domain exceptions are mapped once, by the table ``register`` is given
(``gateway.http.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, json, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://consent-gateway.dev/problems/"
CONTENT_TYPE = "application/problem+json"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    502: "bad_gateway",
    503: "service_unavailable",
}


class Problem(Exception):
    """Raise from a view to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.title = title or code.replace("_", " ").capitalize()
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.code,
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
    }
    if problem.detail:
        body["detail"] = problem.detail
    request_id = g.get("request_id")
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
        body["request_id"] = request_id
    body.update(problem.extra)
    response = Response(json.dumps(body), status=problem.status, content_type=CONTENT_TYPE)
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


Mapper = Callable[[Exception], "Problem | None"]
_EXT = "consent_gateway.problems"


def _from_http(exc: HTTPException) -> Problem:
    status = exc.code or 500
    headers: dict[str, str] = {}
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    detail = exc.description if status < 500 else None
    return Problem(status, _HTTP_CODES.get(status, f"http_{status}"), detail, title=exc.name, headers=headers)


def to_problem(exc: Exception) -> Problem:
    if isinstance(exc, Problem):
        return exc
    mapper: Mapper | None = current_app.extensions.get(_EXT)
    mapped = mapper(exc) if mapper is not None else None
    if mapped is not None:
        return mapped
    if isinstance(exc, HTTPException):
        return _from_http(exc)
    if isinstance(exc, OperationalError | DBAPIError) and _is_unavailable(exc):
        return Problem(503, "database_unavailable", "the database cannot be reached; nothing was decided",
                       headers={"Retry-After": "5"})
    log.exception("unhandled error on %s %s", request.method, request.path)
    return Problem(500, "internal_error", "an unexpected error occurred; nothing was committed")


def _is_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return bool(exc.connection_invalidated)


def register(app: Flask, mapper: Mapper) -> None:
    """Answer every error with a problem; ``mapper`` turns the domains' errors into problems (the edge's table)."""
    app.extensions[_EXT] = mapper
    app.register_error_handler(Exception, answer_problem)


def answer_problem(exc: Exception) -> Response:
    """The app's answer to anything raised: a problem, remembered as a failure (and its code for the logs)."""
    problem = to_problem(exc)
    g.failed = True
    if problem.status >= 500:
        g.problem_code = problem.code
    return problem_response(problem)
