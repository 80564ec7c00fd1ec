"""Stored events: listings with filters and keyset pagination, one event with what it caused."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from inventory_sync.clock import iso
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import inbound_event

e = inbound_event
SUMMARY = [c for c in e.c if c.name not in ("raw_body", "slot", "content_hash")]


def event_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "status": row.status,
        "error": row.error,
        "received_at": iso(row.received_at),
        "payload_id": row.payload_id,
        "chunk_number": row.chunk_number,
        "total_chunks": row.total_chunks,
        "location_id": row.location_id,
        "occurred_at": iso(row.occurred_at),
        "published_at": iso(row.published_at),
        "processed_at": iso(row.processed_at),
        "replayed_at": iso(row.replayed_at),
        "content_type": row.content_type,
    }


@dataclass(frozen=True)
class EventFilter:
    status: str | None = None
    name: str | None = None
    tenant: str | None = None
    location_id: str | None = None
    payload_id: str | None = None
    since: datetime | None = None
    """On `received_at`, inclusive."""
    until: datetime | None = None
    """On `received_at`, exclusive."""


def _filtered(columns: list[Any], where: EventFilter) -> Any:
    return narrow(
        select(*columns).order_by(e.c.id),
        [
            (e.c.status, where.status),
            (e.c.name, where.name),
            (e.c.tenant, where.tenant),
            (e.c.location_id, where.location_id),
            (e.c.payload_id, where.payload_id),
        ],
        period=e.c.received_at,
        since=where.since,
        until=where.until,
    )


def list_events(
    conn: Connection, where: EventFilter, limit: int, after: int | None
) -> list[dict[str, Any]]:
    """Events in arrival order, after the id `after`."""
    query = _filtered(SUMMARY, where).limit(limit)
    if after is not None:
        query = query.where(e.c.id > after)
    return [event_json(row) for row in conn.execute(query)]


def body_kept(row: Any) -> bool:
    """Whether the event's raw body is stored: every one is, but an ignored event's only with
    INVSYNC_KEEP_IGNORED_BODIES (an empty body is never ignored, it is quarantined)."""
    return bool(row.status != "ignored" or row.raw_body_bytes > 0)


def get_event(conn: Connection, event_id: int, inline_bytes: int | None = None) -> Any:
    """The stored row with `raw_body_bytes`, or None. The raw body is read only when it has at
    most `inline_bytes` (any size when None); else `raw_body` is None."""
    size = func.length(e.c.raw_body).label("raw_body_bytes")
    raw: ColumnElement[Any] = e.c.raw_body
    if inline_bytes is not None:
        raw = case((size <= inline_bytes, e.c.raw_body), else_=None).label("raw_body")
    columns = [c for c in e.c if c.name != "raw_body"]
    return conn.execute(select(*columns, raw, size).where(e.c.id == event_id)).one_or_none()


def matching_ids(conn: Connection, where: EventFilter, limit: int, after: int = 0) -> list[int]:
    """Ids of matching events in arrival order, after the id `after`, at most `limit`."""
    query = _filtered([e.c.id], where).where(e.c.id > after).limit(limit)
    return list(conn.execute(query).scalars())


def count_matching(conn: Connection, where: EventFilter, after: int = 0) -> int:
    """How many events match, after the id `after`."""
    matching = _filtered([e.c.id], where).where(e.c.id > after).order_by(None).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def count_by_status(conn: Connection, since: datetime | None = None) -> dict[str, int]:
    """Events by status; only those received at or after `since` when given."""
    query = select(e.c.status, func.count()).group_by(e.c.status).order_by(e.c.status)
    if since is not None:
        query = query.where(e.c.received_at >= since)
    return {status: int(number) for status, number in conn.execute(query)}


def count_by_name_and_status(
    conn: Connection, names: Collection[str]
) -> list[tuple[str, str, int]]:
    """(name, status, events), with every name outside `names` counted as `other`: labels stay
    bounded whatever NewStore sends."""
    name = case((e.c.name.in_(sorted(names)), e.c.name), else_=literal("other")).label("name")
    rows = conn.execute(select(name, e.c.status, func.count()).group_by(name, e.c.status))
    return [(row[0], row[1], int(row[2])) for row in rows]
