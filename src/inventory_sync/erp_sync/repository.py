"""Outbox queries for the ops API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from inventory_sync.db import iso, utcnow
from inventory_sync.erp_sync.models import outbox_message


def message_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        "last_error": row.last_error,
        "last_status_code": row.last_status_code,
        "event_id": row.event_id,
        "tenant": row.tenant,
        "location_id": row.location_id,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "delivered_at": iso(row.delivered_at),
    }


def message_for_event(conn: Connection, event_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(outbox_message).where(outbox_message.c.event_id == event_id)
    ).one_or_none()
    return None if row is None else message_json(row)


def backlog(conn: Connection) -> dict[str, Any]:
    """Messages by status and the age of the oldest pending one (None when none is pending).

    `{"pending", "delivered", "dead", "oldest_pending_age_seconds"}`; the age runs from the
    message's creation, i.e. how long the ERP has been behind.
    """
    o = outbox_message
    counts = {"pending": 0, "delivered": 0, "dead": 0}
    for status, number in conn.execute(select(o.c.status, func.count()).group_by(o.c.status)):
        counts[status] = int(number)
    oldest = conn.execute(
        select(func.min(o.c.created_at)).where(o.c.status == "pending")
    ).scalar_one()
    age = None if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
    return {**counts, "oldest_pending_age_seconds": age}
