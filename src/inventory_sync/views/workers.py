"""ERP sync workers as their heartbeats show them (erp_sync.heartbeat)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso, utcnow
from inventory_sync.storage.tables import erp_worker

STATES = ("delivering", "idle", "misconfigured", "lost", "stopped")
# Six missed heartbeats: the worker is gone (killed, its machine down) without saying so.
LOST_AFTER = timedelta(seconds=30)


def workers(conn: Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every worker heard of in the last day, newest first; `state` is `lost` for one that
    stopped beating without saying it stopped."""
    now = now or utcnow()
    rows = conn.execute(select(erp_worker).order_by(erp_worker.c.seen_at.desc()))
    return [
        {
            "name": row.name,
            "state": "lost"
            if row.state != "stopped" and now - row.seen_at > LOST_AFTER
            else row.state,
            "breaker_open": row.breaker_open,
            "last_error": row.last_error,
            "started_at": iso(row.started_at),
            "seen_at": iso(row.seen_at),
        }
        for row in rows
    ]


def count_by_state(found: list[dict[str, Any]]) -> Counter[str]:
    return Counter(worker["state"] for worker in found)
