"""gunicorn, embedded: ``consent-gateway serve`` runs the same app the tests run."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


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
        return create_app({"AUDIT_BACKGROUND": True})


def run(*, host: str, port: int, workers: int, threads: int = 4) -> None:
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            # Slow-loris bodies and hung clients are cut off rather than holding a worker forever.
            "timeout": 120,
            "graceful_timeout": 20,
            "keepalive": 5,
            "limit_request_field_size": 8190,
            "limit_request_fields": 100,
            "accesslog": None,
        }
    ).run()
