"""One info line a minute with the webhook answers of this process, so that traffic shows at
the default log level without a line per event (which `webhook.received` gives at debug)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

log = logging.getLogger("inventory_sync.webhooks")

SUMMARY_SECONDS = 60.0


class Traffic:
    """Webhook answers by status since the last summary line."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, status: str) -> None:
        self._counts[status] += 1

    def take(self) -> dict[str, int]:
        counts, self._counts = self._counts, Counter()
        return dict(counts)

    async def summarise(self, every: float = SUMMARY_SECONDS) -> None:
        """Log the counts every `every` seconds, when there were any, until cancelled."""
        while True:
            await asyncio.sleep(every)
            counts = self.take()
            if counts:
                log.info("webhook.summary", extra={"seconds": every, **counts})


TRAFFIC = Traffic()
