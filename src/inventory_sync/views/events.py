"""Stored events: listings with filters and keyset pagination, one event with what it caused."""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from inventory_sync.clock import iso
from inventory_sync.storage.database import Database
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import inbound_event
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views import outbox as outbox_view

e = inbound_event
SUMMARY = [c for c in e.c if c.name not in ("raw_body", "slot", "content_hash")]
# Ids are read in pages so a large backlog never sits in memory.
BATCH = 500


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
        "dismissed_at": iso(row.dismissed_at),
        "dismissed_by": row.dismissed_by,
        "dismiss_reason": row.dismiss_reason,
        "body_purged_at": iso(row.body_purged_at),
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


def _filtered(columns: list[Any], where: EventFilter, newest_first: bool = False) -> Any:
    return narrow(
        select(*columns).order_by(e.c.id.desc() if newest_first else e.c.id),
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
    conn: Connection,
    where: EventFilter,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Events in arrival order, or newest first, from just past the id `after`."""
    query = _filtered(SUMMARY, where, newest_first).limit(limit)
    if after is not None:
        query = query.where(e.c.id < after if newest_first else e.c.id > after)
    return [event_json(row) for row in conn.execute(query)]


def body_kept(row: Any) -> bool:
    """Whether the event's raw body is stored: every one is until retention purges it, but an
    ignored event's only with INVSYNC_KEEP_IGNORED_BODIES (an empty body is never ignored, it
    is quarantined)."""
    if row.body_purged_at is not None:
        return False
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


# What one event's detail holds at most, so that a large event costs what a page costs; the
# rest is a request away (`/raw`, `/v1/ledger?event_id=`).
INLINE_BODY_BYTES = 1024 * 1024
INLINE_MOVEMENTS = 1000


def event_detail(conn: Connection, event_id: int) -> dict[str, Any] | None:
    """One event with its raw body (as text when it is UTF-8, else base64; neither when it is
    over `INLINE_BODY_BYTES`), its first `INLINE_MOVEMENTS` ledger movements with
    `movements_total`, and its ERP message without the document; None if there is no such
    event."""
    row = get_event(conn, event_id, INLINE_BODY_BYTES)
    if row is None:
        return None
    body = event_json(row)
    body["raw_body_kept"] = body_kept(row)
    body["raw_body_bytes"] = row.raw_body_bytes
    body["raw_body"] = body["raw_body_base64"] = None
    if row.raw_body is not None and body["raw_body_kept"]:
        try:
            body["raw_body"] = row.raw_body.decode("utf-8")
        except UnicodeDecodeError:
            body["raw_body_base64"] = base64.b64encode(row.raw_body).decode()
    where = ledger_view.MovementFilter(event_id=event_id)
    movements = ledger_view.list_movements(conn, where, INLINE_MOVEMENTS, None)
    body["movements"] = movements
    body["movements_total"] = (
        len(movements)
        if len(movements) < INLINE_MOVEMENTS
        else ledger_view.count_of_event(conn, event_id)
    )
    body["erp_message"] = outbox_view.message_for_event(conn, event_id)
    return body


def matching_ids(conn: Connection, where: EventFilter, limit: int, after: int = 0) -> list[int]:
    """Ids of matching events in arrival order, after the id `after`, at most `limit`."""
    query = _filtered([e.c.id], where).where(e.c.id > after).limit(limit)
    return list(conn.execute(query).scalars())


def count_matching(conn: Connection, where: EventFilter, after: int = 0) -> int:
    """How many events match, after the id `after`."""
    matching = _filtered([e.c.id], where).where(e.c.id > after).order_by(None).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def event_ids(db: Database, where: EventFilter) -> Iterator[int]:
    """Ids of matching events in arrival order, read in pages, each in a snapshot of its own."""
    after = 0
    while True:
        with db.snapshot() as conn:
            ids = matching_ids(conn, where, BATCH, after)
        yield from ids
        if len(ids) < BATCH:
            return
        after = ids[-1]


def count_by_status(
    conn: Connection, tenant: str | None = None, since: datetime | None = None
) -> dict[str, int]:
    """Events by status, of one tenant when given, received at or after `since` when given."""
    query = select(e.c.status, func.count()).group_by(e.c.status).order_by(e.c.status)
    if since is not None:
        query = query.where(e.c.received_at >= since)
    rows = conn.execute(narrow(query, [(e.c.tenant, tenant)]))
    return {status: int(number) for status, number in rows}


def count_by_name_and_status(
    conn: Connection, names: Collection[str]
) -> list[tuple[str, str, int]]:
    """(name, status, events), with every name outside `names` counted as `other`: labels stay
    bounded whatever NewStore sends."""
    name = case((e.c.name.in_(sorted(names)), e.c.name), else_=literal("other")).label("name")
    rows = conn.execute(select(name, e.c.status, func.count()).group_by(name, e.c.status))
    return [(row[0], row[1], int(row[2])) for row in rows]


def first_received_at(conn: Connection, tenant: str) -> datetime | None:
    """When the inbox stored its first event of `tenant`: since then it holds the dedupe key
    of every event of that tenant it stored (rows are never deleted). Read in id order, which
    is arrival order, so the primary key's index finds it without a scan of the tenant."""
    query = select(e.c.received_at).where(e.c.tenant == tenant).order_by(e.c.id).limit(1)
    return conn.execute(query).scalar_one_or_none()


def stored_by_payload(
    conn: Connection, tenant: str, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[int | None, int | None, str, str]]]:
    """For each (name, payload id) of `keys`: (chunk_number, total_chunks, status, slot) of
    every stored event of that tenant, name and payload id. The slot tells apart the events a
    payload id has several of (a sale's, one per logical timestamp)."""
    found: dict[tuple[str, str], list[tuple[int | None, int | None, str, str]]] = {}
    wanted = set(keys)
    ids = sorted({payload_id for _, payload_id in wanted})
    for start in range(0, len(ids), BATCH):
        query = select(
            e.c.name, e.c.payload_id, e.c.chunk_number, e.c.total_chunks, e.c.status, e.c.slot
        )
        query = query.where(e.c.tenant == tenant, e.c.payload_id.in_(ids[start : start + BATCH]))
        for row in conn.execute(query.order_by(e.c.id)):
            if (row.name, row.payload_id) in wanted:
                found.setdefault((row.name, row.payload_id), []).append(
                    (row.chunk_number, row.total_chunks, row.status, row.slot)
                )
    return found
