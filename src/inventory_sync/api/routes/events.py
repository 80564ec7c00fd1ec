"""Stored events: `GET /v1/events`, one event, its raw body, replay and dismissal."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from inventory_sync.api import csv_export, pagination
from inventory_sync.api.auth import AdminAccess, AdminName, ReadAccess
from inventory_sync.api.deps import DatabaseDep, RulesDep, StoreDep
from inventory_sync.api.problems import responses
from inventory_sync.api.queryparams import (
    BadParameter,
    EventFilterQuery,
    Order,
    timestamp,
)
from inventory_sync.api.schemas import (
    BulkReplay,
    Dismissed,
    Event,
    EventDetail,
    EventPage,
    EventStatus,
    IntakeAnswer,
)
from inventory_sync.clock import iso, utcnow
from inventory_sync.errors import NotFound, ServiceError
from inventory_sync.intake import dismiss as dismissal
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Status
from inventory_sync.ops import bulk
from inventory_sync.storage.database import Database
from inventory_sync.views import events as events_view

router = APIRouter(prefix="/v1/events", tags=["events"])
EventId = Annotated[int, Path(ge=1, le=2**62)]
CSV_COLUMNS = [
    "id",
    "tenant",
    "name",
    "status",
    "error",
    "received_at",
    "payload_id",
    "chunk_number",
    "total_chunks",
    "location_id",
    "occurred_at",
    "published_at",
    "processed_at",
    "replayed_at",
    "content_type",
    "dismissed_at",
    "dismissed_by",
    "dismiss_reason",
    "body_purged_at",
]


class NotQuarantined(ServiceError):
    status_code = 409
    code = "not_quarantined"


@router.get("", response_model=EventPage, responses=csv_export.RESPONSES)
def list_events(
    db: DatabaseDep,
    _role: ReadAccess,
    matching: EventFilterQuery,
    status: EventStatus | None = None,
    order: Order = "desc",
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Stored events, newest first (`order=asc`: in arrival order); pass the same `order`
    with a `next_cursor` as with the page that gave it. `since`/`until` filter on
    `received_at` (`until` exclusive). `format=csv` streams every matching event, without
    bodies."""
    where = replace(matching, status=status)
    newest_first = order == "desc"

    def fetch(conn: Any, size: int, after: int | None) -> list[dict[str, Any]]:
        return events_view.list_events(conn, where, size, after, newest_first)

    if format == "csv":
        every = csv_export.every_row(db, fetch, lambda row: row["id"])
        return csv_export.response("events", CSV_COLUMNS, every)
    position = pagination.decode(cursor, (int,))
    with db.snapshot() as conn:
        rows = fetch(conn, limit + 1, int(position[0]) if position else None)
    return pagination.answer(rows, limit, lambda row: [row["id"]])


# PostgreSQL text cannot hold NUL, as for query parameters (`queryparams.TextQuery`).
Text = Annotated[str | None, Field(max_length=1000, pattern=r"^[^\x00]*$")]


class Dismissal(BaseModel):
    """Why the events are set aside (`reason`), and optionally who says so (`by`); the admin
    token's fingerprint is recorded with it."""

    model_config = ConfigDict(extra="forbid")
    # Something to read: not blank, and without NUL.
    reason: str = Field(max_length=dismissal.MAX_REASON, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")
    by: Text = None


class BulkDismissal(Dismissal):
    """Every quarantined event matching the filters; `all: true` is needed when no filter is
    given. `since`/`until`: ISO-8601 on `received_at`, `until` exclusive."""

    name: Text = None
    tenant: Text = None
    location_id: Text = None
    since: Text = None
    until: Text = None
    all: bool = False


def _who(admin: str, by: str | None) -> str:
    return f"{by} ({admin})" if by else admin


@router.post("/dismiss", response_model=Dismissed, responses=responses("invalid_parameter"))
def dismiss_many(db: DatabaseDep, admin: AdminName, request: BulkDismissal) -> Any:
    """Dismiss every quarantined event matching `name`, `tenant`, `location_id`, `since` and
    `until` (on `received_at`, `until` exclusive), or every quarantined event with `all: true`.
    Committed in batches; answers how many were dismissed."""
    where = events_view.EventFilter(
        status=Status.QUARANTINED,
        name=request.name,
        tenant=request.tenant,
        location_id=request.location_id,
        since=timestamp("since", request.since),
        until=timestamp("until", request.until),
    )
    if where == events_view.EventFilter(status=Status.QUARANTINED) and not request.all:
        raise BadParameter("give at least one filter, or `all: true` to dismiss every one")
    ids = events_view.event_ids(db, where)
    by = _who(admin, request.by)
    return {"dismissed": dismissal.dismiss(db, ids, request.reason, by, utcnow())}


def _load(db: Database, event_id: int) -> Any:
    with db.snapshot() as conn:
        row = events_view.get_event(conn, event_id)
    if row is None:
        raise NotFound(f"no event {event_id}")
    return row


@router.get(
    "/{event_id}",
    response_model=EventDetail,
    responses=responses("not_found", "csv_unavailable"),
)
def get_event(
    db: DatabaseDep,
    _role: ReadAccess,
    event_id: EventId,
    format: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Any:
    """One event with its raw body (as text when it is UTF-8, else base64; neither when it is
    over 1 MiB: `/raw` has it), its first 1,000 ledger movements (`movements_total` says how
    many there are; `/v1/ledger?event_id=` has them all) and its ERP message. A dismissed
    event says who dismissed it, when and why."""
    csv_export.refuse(format, "an event")
    with db.snapshot() as conn:
        body = events_view.event_detail(conn, event_id)
    if body is None:
        raise NotFound(f"no event {event_id}")
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
    event whose body was not kept (INVSYNC_KEEP_IGNORED_BODIES) and for a body retention has
    purged (`body_purged_at`)."""
    row = _load(db, event_id)
    if row.body_purged_at is not None:
        raise NotFound(
            f"the body of event {event_id} was purged at {iso(row.body_purged_at)} by retention "
            "(INVSYNC_RETAIN_BODIES_DAYS); the event's fields and its ledger rows are kept"
        )
    if not events_view.body_kept(row):
        raise NotFound(
            f"the body of event {event_id} was not kept: it is an event the service does not "
            "handle (INVSYNC_KEEP_IGNORED_BODIES keeps them)"
        )
    return Response(row.raw_body, media_type=row.content_type or "application/octet-stream")


@router.post("/replay", response_model=BulkReplay)
async def replay_matching(
    store: StoreDep,
    rules: RulesDep,
    _role: AdminAccess,
    where: EventFilterQuery,
    max: Annotated[int, Query(ge=1, le=bulk.MAX_REPLAY)] = 100,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Any:
    """Re-process up to `max` quarantined events matching the filters (those of `GET
    /v1/events`), oldest first, after the event id `after`. Answers `replayed` (left
    quarantine), `failed` (still quarantined, with a new reason), `outcomes` by status,
    `remaining` (matching events this call did not reach) and `next_after`: pass it as
    `after` to go on, past the events that stay quarantined."""
    done = await bulk.replay_matching(store, rules, where, max, after)
    return {
        "replayed": done.replayed,
        "failed": done.failed,
        "remaining": done.remaining,
        "outcomes": done.outcomes,
        "next_after": done.last_id if done.remaining else None,
    }


@router.post(
    "/{event_id}/replay",
    response_model=IntakeAnswer,
    responses=responses("not_found", "not_quarantined"),
)
async def replay_event(
    store: StoreDep, rules: RulesDep, _role: AdminAccess, event_id: EventId
) -> Any:
    """Re-process a quarantined event with today's code and configuration. Idempotent: an
    event that is no longer quarantined is left as it is. A dismissed event is refused (409):
    it was set aside on purpose."""
    outcome = await intake.replay(store, event_id, rules)
    if outcome is None:
        raise NotFound(f"no event {event_id}")
    if outcome.status is Status.DISMISSED:
        raise NotQuarantined(f"event {event_id} is dismissed; a dismissed event is not replayed")
    return {"status": outcome.status, "event_id": outcome.event_id, "detail": outcome.detail}


@router.post(
    "/{event_id}/dismiss",
    response_model=Event,
    responses=responses("not_found", "not_quarantined"),
)
def dismiss_event(db: DatabaseDep, admin: AdminName, event_id: EventId, request: Dismissal) -> Any:
    """Set a quarantined event aside for good, with a reason: its status becomes `dismissed`,
    it leaves the quarantine counts, and replay refuses it; its body (until retention), its
    error and who dismissed it, when and why are kept. Dismissing a dismissed event changes
    nothing (the first reason stays); an event that is not quarantined answers 409."""
    dismissal.dismiss(db, [event_id], request.reason, _who(admin, request.by), utcnow())
    with db.snapshot() as conn:
        row = events_view.get_event(conn, event_id, 0)
    if row is None:
        raise NotFound(f"no event {event_id}")
    if row.status != Status.DISMISSED:
        raise NotQuarantined(
            f"event {event_id} is {row.status}; only a quarantined event is dismissed"
        )
    return events_view.event_json(row)
