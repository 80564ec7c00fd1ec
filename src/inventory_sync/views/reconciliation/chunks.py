"""Incomplete chunk sets: transactions whose chunks 1..total_chunks have not all been applied.

A set is one (tenant, event name, payload id). A chunk counts as received only when it is
`accepted`: a quarantined chunk is stored but not in the ledger, so the transaction is still
incomplete; such chunks are listed in `quarantined_chunks` because replaying them, not asking
NewStore to resend, is the fix. `total_chunks` is the largest any chunk of the set announced;
sets where no chunk announced one (for example ASNs, which do not carry it) are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Subquery, and_, case, distinct, func, or_, select, tuple_
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import inbound_event

e = inbound_event

# A set may announce up to 100 000 chunks; a page lists at most this many missing ones.
MAX_LISTED = 1000


@dataclass(frozen=True)
class ChunkFilter:
    tenant: str | None = None
    name: str | None = None
    payload_id: str | None = None
    since: datetime | None = None
    """On the first chunk's `received_at` (inclusive)."""
    until: datetime | None = None
    """On the first chunk's `received_at` (exclusive)."""


def _incomplete(where: ChunkFilter, after: list[str] | None) -> Select[Any]:
    total = func.max(e.c.total_chunks)
    received = func.count(distinct(case((e.c.status == "accepted", e.c.chunk_number))))
    first_received = func.min(e.c.received_at)
    query = (
        select(
            e.c.tenant,
            e.c.name,
            e.c.payload_id,
            total.label("total_chunks"),
            received.label("received_chunks"),
            first_received.label("first_received_at"),
            func.max(e.c.received_at).label("last_received_at"),
            # Every chunk names the same store; a chunk refused before its store was read, none.
            func.max(e.c.location_id).label("location_id"),
        )
        # A sale has no chunk number (its key ends with its logical timestamp): it is never
        # chunked, whatever `total_chunks` its payload carries.
        .where(
            e.c.tenant.is_not(None),
            e.c.name.is_not(None),
            e.c.payload_id.is_not(None),
            e.c.chunk_number.is_not(None),
        )
        .group_by(e.c.tenant, e.c.name, e.c.payload_id)
        .having(total > received)
    )
    query = narrow(
        query,
        [(e.c.tenant, where.tenant), (e.c.name, where.name), (e.c.payload_id, where.payload_id)],
        period=first_received,
        since=where.since,
        until=where.until,
        aggregate=True,
    )
    if after is not None:
        query = query.where(tuple_(e.c.tenant, e.c.name, e.c.payload_id) > tuple_(*after))
    return query


def list_incomplete(
    conn: Connection, where: ChunkFilter, limit: int, after: list[str] | None
) -> list[dict[str, Any]]:
    """Up to `limit` incomplete sets after the (tenant, name, payload_id) position `after`."""
    query = _incomplete(where, after).order_by(e.c.tenant, e.c.name, e.c.payload_id).limit(limit)
    sets = list(conn.execute(query))
    if not sets:
        return []
    by_name: dict[tuple[str, str], list[str]] = {}
    for row in sets:
        by_name.setdefault((row.tenant, row.name), []).append(row.payload_id)
    stored = conn.execute(
        select(e.c.tenant, e.c.name, e.c.payload_id, e.c.chunk_number, e.c.status).where(
            or_(
                *(
                    and_(e.c.tenant == tenant, e.c.name == name, e.c.payload_id.in_(ids))
                    for (tenant, name), ids in by_name.items()
                )
            ),
            e.c.status.in_(("accepted", "quarantined")),
        )
    )
    accepted: dict[tuple[str, str, str], set[int]] = {}
    quarantined: dict[tuple[str, str, str], set[int]] = {}
    for row in stored:
        target = accepted if row.status == "accepted" else quarantined
        target.setdefault((row.tenant, row.name, row.payload_id), set()).add(row.chunk_number)
    items = []
    for row in sets:
        set_key = (row.tenant, row.name, row.payload_id)
        have = accepted.get(set_key, set())
        missing = []
        for number in range(1, row.total_chunks + 1):
            if number not in have:
                missing.append(number)
                if len(missing) == MAX_LISTED:
                    break
        parked = quarantined.get(set_key, set())
        items.append(
            {
                "tenant": row.tenant,
                "event_name": row.name,
                "payload_id": row.payload_id,
                "total_chunks": row.total_chunks,
                "received_chunks": int(row.received_chunks),
                "missing_chunks": missing,
                "missing_count": row.total_chunks - int(row.received_chunks),
                "quarantined_chunks": sorted(n for n in parked if n not in have),
                "first_received_at": iso(row.first_received_at),
                "last_received_at": iso(row.last_received_at),
            }
        )
    return items


def incomplete_sets(where: ChunkFilter) -> Subquery:
    """(tenant, name, payload_id, location_id, ...) of every incomplete set matching `where`."""
    return _incomplete(where, None).subquery("incomplete")


def count_incomplete(conn: Connection, tenant: str | None) -> int:
    found = incomplete_sets(ChunkFilter(tenant=tenant))
    return int(conn.execute(select(func.count()).select_from(found)).scalar_one())
