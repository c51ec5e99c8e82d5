"""Request ids, JSON log lines and Prometheus metrics for every request."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUEST_ID_HEADER = "X-Request-Id"
# A caller may pass its own id for correlation, but only in a shape that cannot smuggle anything
# into our logs or headers.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# The metrics of this process. Under `consent-gateway serve` every worker writes them to the shared
# PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers it, reads the sum of all workers.
REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "consent_gateway_requests_total", "HTTP requests", ["endpoint", "method", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "consent_gateway_request_seconds",
    "HTTP request latency",
    ["endpoint", "method"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

access_log = logging.getLogger("consent_gateway.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _INCOMING_ID.match(incoming) else "req_" + secrets.token_urlsafe(12)
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or "req_" + secrets.token_urlsafe(12)
        response.headers[REQUEST_ID_HEADER] = request_id
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        LATENCY.labels(endpoint, request.method).observe(elapsed)
        access_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "fields": {
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                    "client_id": g.get("client_id"),
                    "code": g.get("problem_code"),
                }
            },
        )
        return response


def metrics_response() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), content_type=PROMETHEUS_CONTENT_TYPE)
    return Response(generate_latest(REGISTRY), content_type=PROMETHEUS_CONTENT_TYPE)
