"""Completeness per store: where events are being lost (PRODUCT.md section 6).

Three signs, each from its own detail view:

- count drift (`counts`): with every event delivered an anchored count line drifts by 0, so the
  share of counted lines with zero drift is the store's `score`, and `drift_units` how many
  units our ledger misses there;
- chunk sets still incomplete after NewStore's 15-minute delivery window (`chunks`): a chunk
  that should have arrived by now;
- quarantined events whose store could be read: events we have but did not apply.

A store is listed when it has any of them, or has ever been counted. The window (`since`)
applies to the counts' `counted_at`, the chunk sets' first arrival and the quarantined events'
arrival; `last_counted_at` is the store's last count ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import inbound_event
from inventory_sync.views.reconciliation import chunks, counts

e = inbound_event

WINDOW = timedelta(days=30)
"""The default window: the last 30 days."""
DELIVERY_WINDOW = timedelta(minutes=15)
"""NewStore delivers an event within 15 minutes of it happening (its SLA, EVENTS.md 2.3)."""


@dataclass(frozen=True)
class CompletenessFilter:
    since: datetime
    tenant: str | None = None
    location_id: str | None = None


def by_location(conn: Connection, where: CompletenessFilter, now: datetime) -> list[dict[str, Any]]:
    """One item per store, ordered by (tenant, location_id)."""
    stores: dict[tuple[str, str], dict[str, Any]] = {}

    def store(tenant: str, location_id: str) -> dict[str, Any]:
        return stores.setdefault(
            (tenant, location_id),
            {
                "tenant": tenant,
                "location_id": location_id,
                "last_counted_at": None,
                "counted_lines": 0,
                "lines_with_drift": 0,
                "drift_units": 0,
                "stale_incomplete_chunk_sets": 0,
                "quarantined_events": 0,
                "score": None,
            },
        )

    for row in counts.last_counted(conn, where.tenant, where.location_id):
        store(row.tenant, row.location_id)["last_counted_at"] = iso(row.last_counted_at)
    window = counts.CountFilter(
        tenant=where.tenant, location_id=where.location_id, since=where.since
    )
    for row in counts.drift_by_location(conn, window):
        item = store(row.tenant, row.location_id)
        item["counted_lines"] = int(row.counted_lines)
        item["lines_with_drift"] = int(row.lines_with_drift)
        item["drift_units"] = int(row.drift_units)
        if item["counted_lines"]:
            exact = item["counted_lines"] - item["lines_with_drift"]
            item["score"] = exact / item["counted_lines"]

    stale = chunks.incomplete_sets(
        chunks.ChunkFilter(tenant=where.tenant, since=where.since, until=now - DELIVERY_WINDOW)
    )
    query = narrow(
        select(stale.c.tenant, stale.c.location_id, func.count().label("sets"))
        .where(stale.c.location_id.is_not(None))
        .group_by(stale.c.tenant, stale.c.location_id),
        [(stale.c.location_id, where.location_id)],
    )
    for row in conn.execute(query):
        store(row.tenant, row.location_id)["stale_incomplete_chunk_sets"] = int(row.sets)

    query = narrow(
        select(e.c.tenant, e.c.location_id, func.count().label("events"))
        .where(e.c.status == "quarantined", e.c.tenant.is_not(None), e.c.location_id.is_not(None))
        .group_by(e.c.tenant, e.c.location_id),
        [(e.c.tenant, where.tenant), (e.c.location_id, where.location_id)],
        period=e.c.received_at,
        since=where.since,
    )
    for row in conn.execute(query):
        store(row.tenant, row.location_id)["quarantined_events"] = int(row.events)

    return [stores[key] for key in sorted(stores)]
