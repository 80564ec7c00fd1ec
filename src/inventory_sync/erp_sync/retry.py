"""When to try again: exponential backoff with full jitter, and `Retry-After`.

Pure values and functions, no I/O, so every rule here is tested without a clock or a network.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Delay before try number `n + 1` after `n` failures.

    The ceiling doubles with every failure, from `base_seconds` up to `max_seconds`, and the
    delay is drawn uniformly between `base_seconds` and that ceiling ("full jitter" with a
    floor). The jitter spreads the retries of a burst of messages that failed together, so a
    recovering ERP is not hit by all of them in the same second.
    """

    base_seconds: float
    max_seconds: float

    def __post_init__(self) -> None:
        if not 0 < self.base_seconds <= self.max_seconds:
            raise ValueError("backoff needs 0 < base_seconds <= max_seconds")

    def ceiling(self, failures: int) -> float:
        exponent = max(failures, 1) - 1
        # 2**exponent overflows a float long before any sane number of failures; the cap wins.
        if exponent >= 64:
            return self.max_seconds
        return min(self.max_seconds, self.base_seconds * 2.0**exponent)

    def delay(
        self,
        failures: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after `failures` consecutive failures.

        A server's `Retry-After` is honoured as a lower bound, but never beyond `max_seconds`:
        a misconfigured ERP asking for a week must not park the outbox for a week.
        """
        ceiling = self.ceiling(failures)
        draw = (rng or random).uniform(self.base_seconds, ceiling)
        if retry_after is not None:
            draw = max(draw, retry_after)
        return min(draw, self.max_seconds)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP-date, RFC 9110 10.2.3).

    Unparseable values are ignored (None), and dates in the past mean "now" (0).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
