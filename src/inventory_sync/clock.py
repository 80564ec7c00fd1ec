"""Time as the service reads and writes it: aware UTC datetimes, ISO-8601 text with a `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a `Z`, as every API answer and ERP document writes time."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 with 0-9 fractional digits and `Z`, an offset or nothing (then UTC).

    Digits beyond the sixth are dropped (microsecond precision); the result is always UTC.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        if not isinstance(value, str):
            raise ValueError("expected an ISO-8601 timestamp string")
        match = _TIMESTAMP.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"not an ISO-8601 timestamp: {clip(value)!r}")
        day, clock, fraction, zone = match.groups()
        text = f"{day}T{clock or '00:00'}"
        if fraction:
            text += "." + fraction[:6].ljust(6, "0")
        if zone and zone not in ("Z", "z", "UTC"):
            sign, digits = zone[0], zone[1:].replace(":", "")
            text += f"{sign}{digits[:2]}:{digits[2:4] or '00'}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a valid date and time: {clip(value)!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"out of range once converted to UTC: {clip(str(value))!r}") from None


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
