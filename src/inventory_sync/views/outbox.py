"""Outbox queries for the ops API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso, utcnow
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import outbox_message, purged_attempts, sync_attempt

m = outbox_message
SUMMARY = [c for c in m.c if c.name != "document"]


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
        "claimed_by": row.claimed_by,
        "claimed_until": iso(row.claimed_until),
    }


def message_for_event(conn: Connection, event_id: int) -> dict[str, Any] | None:
    """The event's message without its document, which can be large (`get_message` has it)."""
    columns = [c for c in outbox_message.c if c.name != "document"]
    row = conn.execute(select(*columns).where(outbox_message.c.event_id == event_id)).one_or_none()
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


@dataclass(frozen=True)
class MessageFilter:
    status: str | None = None
    type: str | None = None
    event_id: int | None = None
    tenant: str | None = None
    location_id: str | None = None
    since: datetime | None = None
    """On `updated_at` (for a dead message, when it died), inclusive."""
    until: datetime | None = None
    """On `updated_at`, exclusive."""
    error: str | None = None
    """Part of `last_error`, in any case."""


def _filtered(columns: list[Any], where: MessageFilter, newest_first: bool = False) -> Select[Any]:
    query = narrow(
        select(*columns).order_by(m.c.event_id.desc() if newest_first else m.c.event_id),
        [
            (m.c.status, where.status),
            (m.c.type, where.type),
            (m.c.event_id, where.event_id),
            (m.c.tenant, where.tenant),
            (m.c.location_id, where.location_id),
        ],
        period=m.c.updated_at,
        since=where.since,
        until=where.until,
    )
    if where.error:
        part = where.error.lower()
        query = query.where(func.lower(m.c.last_error).contains(part, autoescape=True))
    return query


def list_messages(
    conn: Connection,
    where: MessageFilter,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Messages in the order their events were accepted (by `event_id`), or newest first, from
    just past the event id `after`."""
    query = _filtered(SUMMARY, where, newest_first).limit(limit)
    if after is not None:
        query = query.where(m.c.event_id < after if newest_first else m.c.event_id > after)
    return [message_json(row) for row in conn.execute(query)]


def message_ids(conn: Connection, where: MessageFilter, limit: int) -> list[str]:
    """Ids of the first `limit` matching messages, in the order their events were accepted."""
    return list(conn.execute(_filtered([m.c.id], where).limit(limit)).scalars())


def count_messages(conn: Connection, where: MessageFilter) -> int:
    matching = _filtered([m.c.id], where).order_by(None).subquery()
    return int(conn.execute(select(func.count()).select_from(matching)).scalar_one())


def get_message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    """One message with its document and every delivery attempt, oldest first."""
    row = conn.execute(select(m).where(m.c.id == message_id)).one_or_none()
    if row is None:
        return None
    body = message_json(row)
    body["document"] = json.loads(row.document)
    a = sync_attempt
    attempts = conn.execute(select(a).where(a.c.message_id == message_id).order_by(a.c.id)).all()
    body["attempt_log"] = [
        {
            "attempted_at": iso(r.attempted_at),
            "status_code": r.status_code,
            "error": r.error,
            "duration_ms": r.duration_ms,
            "outcome": r.outcome,
            "worker": r.worker,
        }
        for r in attempts
    ]
    return body


def attempts_by_outcome(conn: Connection) -> dict[str, int]:
    """Every delivery attempt ever made by outcome, those retention purged included."""
    a, p = sync_attempt, purged_attempts
    totals: dict[str, int] = {}
    for query in (
        select(a.c.outcome, func.count()).group_by(a.c.outcome),
        select(p.c.outcome, func.sum(p.c.attempts)).group_by(p.c.outcome),
    ):
        for outcome, number in conn.execute(query):
            totals[outcome] = totals.get(outcome, 0) + int(number)
    return totals
