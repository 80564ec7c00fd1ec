"""The retention purge on a schedule, in the ERP sync worker (INVSYNC_PURGE_INTERVAL_MINUTES).

Several workers may each run it: batches lock their rows with `SKIP LOCKED`, so two purges at
once share the work rather than repeat it (storage.retention).
"""

from __future__ import annotations

import asyncio
import logging

from inventory_sync.clock import utcnow
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.settings import Settings
from inventory_sync.storage import retention
from inventory_sync.storage.database import Database

log = logging.getLogger("inventory_sync.erp_sync")


async def purge_periodically(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Purge now, then every `INVSYNC_PURGE_INTERVAL_MINUTES` until `stop`; nothing when 0."""
    every = settings.purge_interval_minutes * 60.0
    if every <= 0:
        return
    policy = retention.Policy.from_settings(settings)
    while not stop.is_set():
        try:
            purged = await asyncio.to_thread(
                retention.purge, db, policy, utcnow(), retention.BATCH, stop.is_set
            )
        except DatabaseUnavailable as error:
            log.warning("retention.purge_failed", extra={"error": str(error)[:200]})
        else:
            if any(purged.as_dict().values()):
                log.info("retention.purged", extra=purged.as_dict())
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
