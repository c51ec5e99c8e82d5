"""How every command prints: human text by default, JSON with ``--json``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from gateway.core.times import format_time


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=_plain) if as_json else human)


def _plain(value: object) -> str:
    # Times as the API writes them (RFC 3339, 2026-11-30T20:41:54Z), not Python's str() with a space.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return format_time(value)
    return str(value)


json_option = click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
