"""Each worker says, every few seconds, that it runs, in what state and whether its breaker is
open: one row of `erp_worker` per worker, read by `/metrics` and `inventory-sync status` from
any process (views.workers), whichever machine the worker runs on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update

from inventory_sync.clock import utcnow
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import erp_worker

log = logging.getLogger("inventory_sync.erp_sync")

HEARTBEAT_SECONDS = 5.0
# Rows of workers gone this long are dropped: restarts give workers new names.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class State:
    state: str
    """delivering | idle (no ERP configured) | misconfigured | stopped"""
    breaker_open: bool = False
    last_error: str | None = None


class Heartbeat:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self.started_at = utcnow()

    def beat(self, state: State, now: datetime | None = None) -> None:
        now = now or utcnow()
        w = erp_worker
        values = {
            "seen_at": now,
            "state": state.state,
            "breaker_open": state.breaker_open,
            "last_error": state.last_error and state.last_error[:500],
        }
        with self.db.transaction() as conn:
            # Only this worker writes its row: no race between the update and the insert.
            found = conn.execute(update(w).where(w.c.name == self.name).values(values)).rowcount
            if not found:
                conn.execute(insert(w).values(name=self.name, started_at=self.started_at, **values))
                conn.execute(delete(w).where(w.c.seen_at < now - FORGET_AFTER))

    async def run(self, stop: asyncio.Event, state: Callable[[], State]) -> None:
        """Beat every `HEARTBEAT_SECONDS` until `stop`, then once more as stopped."""
        while not stop.is_set():
            await self._beat(state())
            try:
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                pass
        await self._beat(State("stopped"))

    async def _beat(self, state: State) -> None:
        try:
            await asyncio.to_thread(self.beat, state)
        except DatabaseUnavailable as error:
            # The worker's own loop says so where it matters; a missed beat is only late.
            log.debug("erp_sync.heartbeat_missed", extra={"error": str(error)[:200]})
