"""RFC 3339 in and out: the one place the gateway turns times into text and text into times.

Every time the gateway emits is UTC with a ``Z``; every time it reads must carry an offset (RFC 3339
has no local time), whether it comes from a query string, a form or the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """``2026-11-30T20:41:54Z`` (microseconds only when there are any)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("only aware datetimes are written as RFC 3339")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_optional(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime; ``ValueError`` otherwise."""
    # A "+" in a query string arrives as a space when the client did not encode it.
    candidate = text.strip().replace(" ", "+") if "T" in text else text.strip()
    try:
        moment = datetime.fromisoformat(candidate.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError("not an RFC 3339 timestamp (e.g. 2026-01-31T00:00:00Z)") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an RFC 3339 timestamp needs an offset (e.g. Z or +08:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ValueError("the timestamp is outside years 1 to 9999 in UTC") from exc
