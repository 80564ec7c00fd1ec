"""Setting quarantined events aside: junk an admin has looked at and will never replay.

A dismissed event keeps its row, its raw body (until retention) and its error, and gains who
dismissed it, when and why; its status becomes `dismissed`, so it leaves the quarantine counts
and replay leaves it alone. Only a quarantined event can be dismissed, and the check is the
`UPDATE`'s own condition, so a replay and a dismissal racing for one event never both win.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update

from inventory_sync.intake.classify import Status
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event

# Events changed per transaction: a bulk dismissal never holds the inbox long.
BATCH = 500
MAX_REASON = 1000


def dismiss(db: Database, ids: Iterable[int], reason: str, by: str, at: datetime) -> int:
    """Dismiss those of `ids` that are quarantined, `BATCH` at a time, each batch committed by
    itself; the number dismissed. `ids` may be read lazily, page by page."""
    e = inbound_event
    total = 0
    batch: list[int] = []

    def flush() -> int:
        with db.transaction() as conn:
            result = conn.execute(
                update(e)
                .where(e.c.id.in_(batch), e.c.status == Status.QUARANTINED.value)
                .values(
                    status=Status.DISMISSED.value,
                    dismissed_at=at,
                    dismissed_by=by,
                    dismiss_reason=reason,
                )
            )
        batch.clear()
        return int(result.rowcount)

    for event_id in ids:
        batch.append(event_id)
        if len(batch) == BATCH:
            total += flush()
    if batch:
        total += flush()
    return total
