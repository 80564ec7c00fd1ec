"""Stored events: `GET /v1/events`, one event, its raw body, and replay."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select

from inventory_sync import pagination
from inventory_sync.auth import AdminAccess, ReadAccess
from inventory_sync.db import Database, iso, utcnow
from inventory_sync.erp_sync import repository as erp_repository
from inventory_sync.errors import NotFound
from inventory_sync.filters import narrow
from inventory_sync.ledger import repository as ledger_repository
from inventory_sync.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.webhooks import service as intake
from inventory_sync.webhooks.models import inbound_event

router = APIRouter(prefix="/v1/events", tags=["events"])
e = inbound_event
EventId = Annotated[int, Path(ge=1, le=2**62)]
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


@router.get("")
def list_events(
    request: Request,
    _role: ReadAccess,
    status: Literal["accepted", "ignored", "quarantined"] | None = None,
    name: TextQuery = None,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    payload_id: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Stored events in arrival order. `since`/`until` filter on `received_at` (`until`
    exclusive)."""
    query = select(*SUMMARY).order_by(e.c.id).limit(limit + 1)
    query = narrow(
        query,
        [
            (e.c.status, status),
            (e.c.name, name),
            (e.c.tenant, tenant),
            (e.c.location_id, location_id),
            (e.c.payload_id, payload_id),
        ],
        period=e.c.received_at,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    position = pagination.decode(cursor, (int,))
    if position is not None:
        query = query.where(e.c.id > position[0])
    db: Database = request.app.state.db
    with db.snapshot() as conn:
        rows = [event_json(row) for row in conn.execute(query)]
    return pagination.page(rows, limit, lambda row: [row["id"]])


def _load(db: Database, event_id: int) -> Any:
    with db.snapshot() as conn:
        row = conn.execute(select(e).where(e.c.id == event_id)).one_or_none()
    if row is None:
        raise NotFound(f"no event {event_id}")
    return row


@router.get("/{event_id}")
def get_event(request: Request, _role: ReadAccess, event_id: EventId) -> Any:
    """One event with its raw body (as text when it is UTF-8, else base64), its ledger
    movements and its ERP message."""
    db: Database = request.app.state.db
    row = _load(db, event_id)
    body = event_json(row)
    try:
        body["raw_body"] = row.raw_body.decode("utf-8")
        body["raw_body_base64"] = None
    except UnicodeDecodeError:
        body["raw_body"] = None
        body["raw_body_base64"] = base64.b64encode(row.raw_body).decode()
    with db.snapshot() as conn:
        where = ledger_repository.MovementFilter(event_id=event_id)
        body["movements"] = list(ledger_repository.stream_movements(conn, where))
        body["erp_message"] = erp_repository.message_for_event(conn, event_id)
    return body


@router.get("/{event_id}/raw", response_class=Response)
def get_raw(request: Request, _role: ReadAccess, event_id: EventId) -> Response:
    """The stored body byte for byte, with the content type it came with."""
    row = _load(request.app.state.db, event_id)
    return Response(row.raw_body, media_type=row.content_type or "application/octet-stream")


@router.post("/{event_id}/replay")
async def replay_event(
    request: Request,
    _role: AdminAccess,
    event_id: EventId,
) -> Any:
    """Re-process a quarantined event with today's code and configuration. Idempotent: an
    event that is no longer quarantined is left as it is."""
    db: Database = request.app.state.db
    rules: intake.Rules = request.app.state.rules

    def run() -> intake.Outcome | None:
        return replay(db, event_id, rules)

    outcome = await anyio.to_thread.run_sync(run)
    if outcome is None:
        raise NotFound(f"no event {event_id}")
    return {"status": outcome.status, "event_id": outcome.event_id, "detail": outcome.detail}


def replay(db: Database, event_id: int, rules: intake.Rules) -> intake.Outcome | None:
    with db.transaction() as conn:
        return intake.replay(conn, event_id, rules, utcnow())
