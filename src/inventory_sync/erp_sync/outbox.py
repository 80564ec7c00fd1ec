"""Ops on the outbox that read the same on every backend: retry, the pending count.

Claiming, finishing and releasing messages differ per backend (`storage.store.Store`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from inventory_sync.storage.store import DEAD, DELIVERED, PENDING
from inventory_sync.storage.tables import outbox_message

__all__ = ["DEAD", "DELIVERED", "PENDING", "pending_count", "retry", "retry_dead"]


def retry(conn: Connection, message_id: str, now: datetime) -> str | None:
    """Make one message due now. A dead one goes back to `pending` with its attempts reset.

    Returns the status the message had before (None when there is no such message); a
    delivered message is left as it is.
    """
    m = outbox_message
    status = conn.execute(select(m.c.status).where(m.c.id == message_id)).scalar_one_or_none()
    if status == DEAD:
        conn.execute(
            update(m)
            .where(m.c.id == message_id, m.c.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        )
    elif status == PENDING:
        conn.execute(
            update(m)
            .where(m.c.id == message_id, m.c.status == PENDING)
            .values(next_attempt_at=now, updated_at=now)
        )
    return status


def retry_dead(conn: Connection, ids: Collection[str], now: datetime) -> int:
    """The messages `ids` that are dead back to `pending`, attempts reset, due now; any other
    (delivered or retried meanwhile) is left as it is. Returns how many went back."""
    m = outbox_message
    result = conn.execute(
        update(m)
        .where(m.c.id.in_(sorted(ids)), m.c.status == DEAD)
        .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount


def pending_count(conn: Connection) -> int:
    m = outbox_message
    count = conn.execute(select(func.count()).where(m.c.status == PENDING)).scalar_one()
    return int(count)
