"""A circuit breaker for the ERP as a whole: during an outage, probe instead of hammering.

Pure state, driven by the worker with a monotonic clock, so the rules are tested without I/O.

- closed: deliveries flow at full concurrency; `threshold` retryable failures in a row open it.
- open: one probe at a time, at growing intervals (the same backoff as messages, so capped by
  INVSYNC_ERP_RETRY_MAX_SECONDS). A failed probe pushes the next one further out.
- Any answer that shows the ERP is up (2xx, or a permanent 4xx) closes it at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from inventory_sync.erp_sync.retry import Backoff


@dataclass
class Breaker:
    threshold: int
    backoff: Backoff
    rng: random.Random = field(default_factory=random.Random)
    failures_in_a_row: int = 0
    failed_probes: int = 0
    is_open: bool = False
    next_probe_at: float = 0.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")

    def probe_due(self, now: float) -> bool:
        return self.is_open and now >= self.next_probe_at

    def seconds_to_probe(self, now: float) -> float:
        return max(0.0, self.next_probe_at - now) if self.is_open else 0.0

    def succeeded(self) -> bool:
        """The ERP answered. Returns True when this closed an open breaker."""
        was_open = self.is_open
        self.is_open = False
        self.failures_in_a_row = 0
        self.failed_probes = 0
        return was_open

    def failed(self, now: float, *, probe: bool, retry_after: float | None = None) -> bool:
        """A retryable failure. Returns True when this opened the breaker.

        A failure of a request sent before the breaker opened is not a probe and does not push
        the next probe further out: it says nothing new about the outage.
        """
        if self.is_open:
            if probe:
                self.failed_probes += 1
                self._schedule_probe(now, retry_after)
            return False
        self.failures_in_a_row += 1
        if self.failures_in_a_row < self.threshold:
            return False
        self.is_open = True
        self.failed_probes = 1
        self._schedule_probe(now, retry_after)
        return True

    def _schedule_probe(self, now: float, retry_after: float | None) -> None:
        delay = self.backoff.delay(self.failed_probes, retry_after=retry_after, rng=self.rng)
        self.next_probe_at = now + delay
