"""The outbox table's own operations. Never imports an HTTP client."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from inventory_sync.erp_sync.models import outbox_message

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


def enqueue(
    conn: Connection,
    *,
    message_id: str,
    event_id: int,
    tenant: str,
    type_: str,
    location_id: str,
    document: str,
    now: datetime,
) -> None:
    """Queue one document for delivery, due at once. Part of the caller's transaction."""
    conn.execute(
        insert(outbox_message).values(
            id=message_id,
            event_id=event_id,
            tenant=tenant,
            type=type_,
            location_id=location_id,
            document=document,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
