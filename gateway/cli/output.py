"""How every command prints: human text by default, JSON with ``--json``."""

from __future__ import annotations

import json
from typing import Any

import click


def emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else human)


json_option = click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
