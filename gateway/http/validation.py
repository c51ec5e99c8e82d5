"""Parsing request bodies and query strings into typed models, with problem+json for every way they can be wrong."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from gateway.core.problems import Problem
from gateway.core.times import parse_time

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base for request bodies: unknown members are an error, and types are strict.

    Strict, because what a body says ends up signed or audited: ``"yes"`` is not a boolean and ``"5"``
    not a number. Nothing is stripped before the limits are checked, so the limits are the ones the
    document states; free text is stripped afterwards (``Text``).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# The string rules of the contract, written once and used in the models (and so in /openapi.json).
# PostgreSQL cannot store NUL in text, so no string may hold one.
NUL_FREE = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\x00\s][^\x00]*$"
DIGEST = r"^[0-9a-f]{64}$"
MEDIA_ROLE = r"^[a-z][a-z0-9_]{0,31}$"
IDENTIFIER = r"^[A-Za-z0-9_-]{1,64}$"
FILING_NUMBER = r"^[^\s/\x00]{1,100}$"

# A SHA-256 digest: exactly 64 lowercase hex characters, everywhere a digest is accepted.
Digest = Annotated[str, StringConstraints(pattern=DIGEST, min_length=64, max_length=64)]
MediaRole = Annotated[str, StringConstraints(pattern=MEDIA_ROLE, min_length=1, max_length=32)]
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER, min_length=1, max_length=64)]
FilingNumber = Annotated[str, StringConstraints(pattern=FILING_NUMBER, min_length=1, max_length=100)]


# Free text as sent (limits on the raw value, not blank, no NUL), stripped once valid.
ShortText = Annotated[str, StringConstraints(pattern=NOT_BLANK, min_length=1, max_length=200),
                      AfterValidator(str.strip)]
Reason = Annotated[str, StringConstraints(pattern=NUL_FREE, max_length=500), AfterValidator(str.strip)]


class Query(BaseModel):
    """Base for query strings: unknown parameters are an error; values are taken as sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_DIGITS = re.compile(r"[0-9]{1,20}")


def _rfc3339(value: object) -> object:
    return parse_time(value) if isinstance(value, str) else value


# An RFC 3339 timestamp with an offset, read by the one parser (gateway.core.times).
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339),
                      WithJsonSchema({"type": "string", "format": "date-time"})]


def parse_query(model: type[M], *, status: int = 400, code: str = "invalid_parameter") -> M:
    """The query string as ``model``; a parameter given twice is refused rather than half-read."""
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise Problem(status, code, f"{repeated[0]} is given more than once", parameter=repeated[0])
    for name, field in model.model_fields.items():
        value = request.args.get(name)
        # Python's int() also reads "1_0" and " 1"; a number in a URL is decimal digits and nothing else.
        if value is not None and field.annotation is int and not _DIGITS.fullmatch(value):
            msg = "Input should be an integer in decimal digits"
            raise Problem(status, code, f"{name}: {msg}", parameter=name,
                          errors=[{"loc": name, "msg": msg, "type": "int_parsing"}])
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        errors = _errors(exc)
        first = errors[0]
        raise Problem(status, code, f"{first['loc'] or 'query'}: {first['msg']}", parameter=first["loc"],
                      errors=errors) from exc


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _json_payload() -> Any:
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # A body of undeclared length (chunked) is cut at the limit without a word; one more byte
        # tells a body that ended there from one that goes on (RequestEntityTooLarge, 413).
        request.stream.read(1)
    return load_json(raw, "the body")


# No request of ours nests deeper than a handful of levels; the bound also keeps hostile input far
# from the parser's recursion limit.
MAX_DEPTH = 32


def load_json(raw: bytes, what: str) -> Any:
    """Parse JSON from a request; a clear 400 for anything that is not JSON or nests too deep."""
    if _nesting(raw) > MAX_DEPTH:
        raise Problem(400, "json_too_deep", f"{what} nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Problem(400, "malformed_json", f"{what} is not valid JSON: {exc}") from exc


def _nesting(raw: bytes) -> int:
    """The deepest bracket nesting outside strings, counted without parsing (so without recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_body(model: type[M]) -> M:
    return parse_value(model, _json_payload())


def parse_value(model: type[M], payload: Any) -> M:
    if not isinstance(payload, dict):
        raise Problem(422, "validation_failed", "the body must be a JSON object",
                      errors=[{"loc": "", "msg": "expected an object"}])
    nul = _nul_location(payload, "")
    if nul is not None:
        # PostgreSQL cannot store U+0000 in text; refusing it here keeps both backends alike.
        raise Problem(422, "validation_failed", "the request body does not match the schema",
                      errors=[{"loc": nul, "msg": "NUL characters are not allowed", "type": "nul_character"}])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = _errors(exc)
        code = "unknown_field" if any(e["type"] == "extra_forbidden" for e in errors) else "validation_failed"
        raise Problem(422, code, "the request body does not match the schema", errors=errors) from exc


def _nul_location(value: Any, loc: str) -> str | None:
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{loc}.{key}" if loc else str(key)
            if "\x00" in str(key):
                return where
            found = _nul_location(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_location(item, f"{loc}.{index}" if loc else str(index))
            if found is not None:
                return found
    return None
