"""Times given by people (filters): ISO-8601 text or a datetime, as an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime

ISO_EXAMPLE = "expected an ISO-8601 timestamp, e.g. 2026-11-22T09:00:00Z"


def as_utc(value: datetime | str) -> datetime:
    """`value` in UTC (one without a zone is taken as UTC); ValueError with a one-line reason otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(ISO_EXAMPLE) from None
    try:
        checked = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        checked.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError("out of range") from None
    return checked
