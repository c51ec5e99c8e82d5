"""The one place the HTTP edge reads the clock; domains get ``now`` as an argument."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
