"""Stored events: `GET /v1/events`, one event, its raw body, and replay."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from inventory_sync.api import pagination
from inventory_sync.api.auth import AdminAccess, ReadAccess
from inventory_sync.api.deps import DatabaseDep, RulesDep, StoreDep
from inventory_sync.api.problems import responses
from inventory_sync.api.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.api.schemas import EventDetail, EventPage, EventStatus, IntakeAnswer
from inventory_sync.errors import NotFound
from inventory_sync.intake import service as intake
from inventory_sync.storage.database import Database
from inventory_sync.views import events as events_view
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views import outbox as outbox_view

router = APIRouter(prefix="/v1/events", tags=["events"])
EventId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("", response_model=EventPage)
def list_events(
    db: DatabaseDep,
    _role: ReadAccess,
    status: EventStatus | None = None,
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
    where = events_view.EventFilter(
        status=status,
        name=name,
        tenant=tenant,
        location_id=location_id,
        payload_id=payload_id,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = events_view.list_events(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row["id"]])


# What one event's answer holds at most, so that a large event costs what a page costs; the
# rest is a request away (`/raw`, `/v1/ledger?event_id=`).
INLINE_BODY_BYTES = 1024 * 1024
INLINE_MOVEMENTS = 1000


def _load(db: Database, event_id: int, inline_bytes: int | None = None) -> Any:
    with db.snapshot() as conn:
        row = events_view.get_event(conn, event_id, inline_bytes)
    if row is None:
        raise NotFound(f"no event {event_id}")
    return row


@router.get("/{event_id}", response_model=EventDetail, responses=responses("not_found"))
def get_event(db: DatabaseDep, _role: ReadAccess, event_id: EventId) -> Any:
    """One event with its raw body (as text when it is UTF-8, else base64; neither when it is
    over 1 MiB: `/raw` has it), its first 1,000 ledger movements (`movements_total` says how
    many there are; `/v1/ledger?event_id=` has them all) and its ERP message."""
    row = _load(db, event_id, INLINE_BODY_BYTES)
    body = events_view.event_json(row)
    body["raw_body_kept"] = events_view.body_kept(row)
    body["raw_body_bytes"] = row.raw_body_bytes
    body["raw_body"] = body["raw_body_base64"] = None
    if row.raw_body is not None and body["raw_body_kept"]:
        try:
            body["raw_body"] = row.raw_body.decode("utf-8")
        except UnicodeDecodeError:
            body["raw_body_base64"] = base64.b64encode(row.raw_body).decode()
    with db.snapshot() as conn:
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


@router.get(
    "/{event_id}/raw",
    response_class=Response,
    responses={
        200: {
            "description": "The body as received, with the `Content-Type` it came with.",
            "content": {"*/*": {}},
        },
        **responses("not_found"),
    },
)
def get_raw(db: DatabaseDep, _role: ReadAccess, event_id: EventId) -> Response:
    """The stored body byte for byte, with the content type it came with; 404 for an ignored
    event whose body was not kept (INVSYNC_KEEP_IGNORED_BODIES)."""
    row = _load(db, event_id)
    if not events_view.body_kept(row):
        raise NotFound(
            f"the body of event {event_id} was not kept: it is an event the service does not "
            "handle (INVSYNC_KEEP_IGNORED_BODIES keeps them)"
        )
    return Response(row.raw_body, media_type=row.content_type or "application/octet-stream")


@router.post("/{event_id}/replay", response_model=IntakeAnswer, responses=responses("not_found"))
async def replay_event(
    store: StoreDep, rules: RulesDep, _role: AdminAccess, event_id: EventId
) -> Any:
    """Re-process a quarantined event with today's code and configuration. Idempotent: an
    event that is no longer quarantined is left as it is."""
    outcome = await intake.replay(store, event_id, rules)
    if outcome is None:
        raise NotFound(f"no event {event_id}")
    return {"status": outcome.status, "event_id": outcome.event_id, "detail": outcome.detail}
