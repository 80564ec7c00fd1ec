"""An in-memory `Store` for the unit tier: the intake and replay rules without a database.

It keeps the port's contract for intake, replay and credentials as the real stores do (one
write per call, a slot held by one event, replay only of an event still quarantined) and can
be told to fail its next write the ways a database fails. Delivery (claims, leases) is not
faked: its rules live in SQL, tested on both real databases. The real stores are tested
against real databases elsewhere; this one lets the rules above them be tested in
milliseconds.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from inventory_sync.credentials import Generated, digest
from inventory_sync.storage.store import (
    EventRow,
    Holder,
    Recorded,
    SlotTaken,
    StoredEvent,
    Verdict,
    Write,
)


@dataclasses.dataclass
class FakeEvent:
    id: int
    columns: dict[str, Any]
    write: Write | None = None


class FakeStore:
    database: Any = None  # the read side is not faked: views are tested on real databases

    def __init__(self) -> None:
        self.events: dict[int, FakeEvent] = {}
        self.by_slot: dict[str, int] = {}
        self.credentials: dict[str, str] = {}
        self.fail_next: Exception | None = None
        self.writes = 0

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    # -- intake ----------------------------------------------------------------------------------

    async def prepare(self) -> str | None:
        return None

    async def close(self) -> None:
        return None

    async def record_event(self, row: EventRow, write: Write | None = None) -> Recorded:
        self._maybe_fail()
        held = self.by_slot.get(row.slot)
        if held is not None:
            holder = self._holder(held)
            return Recorded(holder.id, holder)
        event_id = len(self.events) + 1
        self.events[event_id] = FakeEvent(event_id, row.columns(), write)
        self.by_slot[row.slot] = event_id
        self.writes += 1
        return Recorded(event_id)

    def _holder(self, event_id: int) -> Holder:
        c = self.events[event_id].columns
        return Holder(event_id, c["content_hash"], c["status"], c["error"])

    async def slot_holder(self, slot: str) -> Holder | None:
        held = self.by_slot.get(slot)
        return None if held is None else self._holder(held)

    async def event(self, event_id: int) -> StoredEvent | None:
        stored = self.events.get(event_id)
        if stored is None:
            return None
        c = stored.columns
        return StoredEvent(
            event_id,
            c["slot"],
            c["status"],
            c["name"],
            c["content_hash"],
            c["raw_body"],
            c["content_type"],
            c["received_at"],
        )

    # -- replay ----------------------------------------------------------------------------------

    async def apply_replay(
        self, event_id: int, verdict: Verdict, replayed_at: datetime, write: Write | None
    ) -> bool:
        self._maybe_fail()
        stored = self.events[event_id]
        if stored.columns["status"] != "quarantined":
            return False
        held = self.by_slot.get(verdict.slot)
        if held is not None and held != event_id:
            raise SlotTaken(held)
        self.by_slot.pop(stored.columns["slot"], None)
        self.by_slot[verdict.slot] = event_id
        stored.columns.update(verdict.columns(), replayed_at=replayed_at)
        stored.write = write
        self.writes += 1
        return True

    async def set_replay_error(self, event_id: int, error: str, replayed_at: datetime) -> None:
        self.events[event_id].columns.update(error=error, replayed_at=replayed_at)

    # -- start-up ------------------------------------------------------------------------------

    async def ensure_credential(self, kind: str, secret: str) -> Generated:
        created = kind not in self.credentials
        stored = self.credentials.setdefault(kind, digest(secret))
        return Generated(kind, secret if created else None, stored)
