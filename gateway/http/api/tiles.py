"""The audit log as C2SP tlog-tiles: each shard's checkpoint, hash tiles and entry bundles (docs/AUDIT.md).

Behind ``audit:read`` like the rest of the auditor API: entries name subjects only by pseudonymous ids,
but they are what an export holds, so they are not served to anyone. Answers are therefore cached
``private``: a shared cache must not hand an auditor's tiles to a client without a token.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response

from audit import queries, tiles
from gateway.auth.oauth import require
from gateway.core.db import db
from gateway.core.problems import Problem
from gateway.http import openapi

bp = Blueprint("audit_tiles", __name__, url_prefix="/v1/audit/shards")

_SHARD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
IMMUTABLE = "private, max-age=31536000, immutable"
SHORT = "private, max-age=10"


def _shard(shard: str) -> str:
    if not re.fullmatch(_SHARD, shard):
        raise Problem(400, "invalid_shard", "a shard is a month, YYYY-MM")
    return shard


@bp.get("/<shard>/checkpoint")
@require("audit:read")
def checkpoint(shard: str) -> Response:
    latest = queries.latest_checkpoint(db.session, _shard(shard))
    if latest is None:
        raise Problem(404, "no_checkpoint", "no checkpoint has been signed for that shard yet")
    return Response(queries.checkpoint_note(db.session, latest), mimetype="text/plain",
                    headers={"Cache-Control": SHORT})


@bp.get("/<shard>/tile/<path:rest>")
@require("audit:read")
def tile(shard: str, rest: str) -> Response:
    _shard(shard)
    try:
        wanted = tiles.parse_path(f"tile/{rest}")
    except tiles.TilePathError as error:
        raise Problem(400, error.code, str(error)) from None
    try:
        data = tiles.read_tile(db.session, shard, wanted)
    except tiles.TileUnavailable as error:
        raise Problem(404, error.code, str(error)) from None
    return Response(data, mimetype="application/octet-stream",
                    headers={"Cache-Control": SHORT if wanted.partial else IMMUTABLE})


# --- OpenAPI ------------------------------------------------------------------------------------

_AUDIT_READ = openapi.protected("audit:read")
_ERRORS = {"401": openapi.problem(), "403": openapi.problem()}
_SHARD_PARAMETER = openapi.path_parameter("shard", "2026-11", "the month, YYYY-MM", _SHARD)
_ROOT = "cI2FLkS7NTNyN8BYeAzSK3doc1efuTwte90tXQiu7OQ="
_NOTE = (f"consent.example.com/audit/2026-11\n8\n{_ROOT}\n\n\u2014 consent.example.com/audit "
         "60VZELQkzZ1f4gqX5Dqyypw5MS8zUWqqsSLh+6eeB5RU+On5h306nHkn1Nn6Iq1TfHv9An4t6fR/pv17EpALKaXZigw=\n")
_TILE_PATH = r"^(0|[1-9][0-9]?|entries)/(x[0-9]{3}/)*[0-9]{3}(\.p/[1-9][0-9]{0,2})?$"


def _cache_control(value: str, description: str) -> dict[str, Any]:
    return {"Cache-Control": {"description": description, "schema": {"type": "string"}, "example": value}}


PATHS: dict[str, Any] = {
    "/v1/audit/shards/{shard}/checkpoint": {"get": {
        "summary": "The shard's latest checkpoint as a C2SP signed note (tlog-tiles checkpoint)",
        "tags": ["audit"], **_AUDIT_READ, "parameters": [_SHARD_PARAMETER],
        "responses": {
            "200": {"description": "origin, size and root, signed; witness cosignature lines appended",
                    "headers": _cache_control(SHORT, "short: a newer checkpoint may be signed any time"),
                    "content": {"text/plain": openapi.media({"type": "string"}, {
                        "checkpoint": openapi.example("The tree of shard 2026-11 at 8 entries", _NOTE)})}},
            "400": openapi.problem("invalid_shard: not a month, YYYY-MM"),
            "404": openapi.problem("no_checkpoint: none signed for that shard yet"),
            **_ERRORS}}},
    "/v1/audit/shards/{shard}/tile/{rest}": {"get": {
        "summary": "A tlog-tiles hash tile (tile/L/N[.p/W]) or entry bundle (tile/entries/N[.p/W])",
        "description": "rest is the tile path after tile/: the level (or entries), the index in groups of "
                       "three digits all but the last prefixed with x (1234067: x001/x234/067), and .p/W for "
                       "a partial tile of W hashes. Only tiles the shard's latest checkpoint covers exist.",
        "tags": ["audit"], **_AUDIT_READ,
        "parameters": [_SHARD_PARAMETER, openapi.path_parameter(
            "rest", "0/x001/x234/067", "the tile path after tile/", _TILE_PATH)],
        "responses": {
            "200": {"description": "a hash tile: W (256 if full) concatenated SHA-256 hashes; an entry bundle: "
                                   "each entry as a big-endian uint16 length and the bytes whose leaf hash the "
                                   "level-0 tile lists",
                    "headers": _cache_control(IMMUTABLE, "full tiles never change; partial ones: short"),
                    "content": {"application/octet-stream": openapi.media(
                        {"type": "string", "format": "binary"}, {
                            "full": openapi.example("tile/0/000: the leaf hashes of entries 0 to 255, 8192 bytes"),
                            "partial": openapi.example("tile/1/000.p/3: the roots of the first three 256-leaf "
                                                       "subtrees, 96 bytes"),
                            "entries": openapi.example("tile/entries/000.p/8: entries 0 to 7, length-prefixed")})}},
            "400": openapi.problem("invalid_tile_path or invalid_shard: not a canonical tile path"),
            "404": openapi.problem("tile_not_found: beyond the latest checkpoint (or purged)"),
            **_ERRORS}}},
}
