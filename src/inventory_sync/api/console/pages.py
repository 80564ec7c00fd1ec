"""The console's pages: what they show is read through `views/`, as the API reads it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import HTMLResponse, Response

from inventory_sync.api import pagination
from inventory_sync.api.console import charts
from inventory_sync.api.console.rendering import ConsoleRoute, Viewer, render
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.queryparams import (
    EventFilterQuery,
    MessageFilterQuery,
    TextQuery,
    TimeQuery,
    timestamp,
)
from inventory_sync.api.routes import ledger as ledger_route
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.outbox import DEAD
from inventory_sync.errors import NotFound
from inventory_sync.intake.classify import Status
from inventory_sync.ledger.effects import Kind
from inventory_sync.views import activity
from inventory_sync.views import events as events_view
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views import outbox as outbox_view
from inventory_sync.views import workers as workers_view
from inventory_sync.views.reconciliation import chunks, counts, summary, transfers

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
Limit = Annotated[int, Query(ge=1, le=1000)]
EventId = Annotated[int, Path(ge=1, le=2**62)]
INTAKE_PARTS = ("accepted", "ignored", "quarantined")


@router.get("")
def overview(request: Request, db: DatabaseDep, viewer: Viewer) -> HTMLResponse:
    now = utcnow()
    with db.snapshot() as conn:
        totals = summary.overview(conn)
        hour = events_view.count_by_status(conn, since=now - timedelta(hours=1))
        day = events_view.count_by_status(conn, since=now - timedelta(days=1))
        workers = workers_view.workers(conn, now)
        intake = activity.intake_by_hour(conn, now)
        backlog = activity.backlog_by_hour(conn, now)
    return render(
        request,
        "overview.html",
        viewer,
        totals=totals,
        hour=hour,
        day=day,
        parts=INTAKE_PARTS,
        breaker_open=any(w["breaker_open"] for w in workers if w["state"] != "lost"),
        workers=workers,
        intake_chart=charts.stacked_bars(intake, INTAKE_PARTS),
        backlog_chart=charts.stacked_bars(backlog, ("pending",)),
    )


def _page(rows: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    return pagination.page(rows, limit, lambda row: [row[key]])


def _after(cursor: str | None) -> int | None:
    position = pagination.decode(cursor, (int,))
    return int(position[0]) if position else None


@router.get("/events")
def events(
    request: Request,
    db: DatabaseDep,
    viewer: Viewer,
    matching: EventFilterQuery,
    status: Literal["accepted", "ignored", "quarantined", "dismissed"] | None = None,
    q: TextQuery = None,
    limit: Limit = PAGE,
    cursor: pagination.Cursor = None,
) -> HTMLResponse:
    """Events with the API's filters; `q` finds an event by its id or its NewStore payload
    id."""
    where = replace(matching, status=status)
    found = None
    with db.snapshot() as conn:
        if q:
            where = replace(where, payload_id=q.strip())
            # isdigit() alone admits digits such as "²" that int() refuses.
            if q.strip().isascii() and q.strip().isdigit() and int(q) <= 2**62:
                row = events_view.get_event(conn, int(q), 0)
                found = None if row is None else events_view.event_json(row)
        rows = events_view.list_events(conn, where, limit + 1, _after(cursor))
    page = _page(rows, limit, "id")
    if found is not None and all(item["id"] != found["id"] for item in page["items"]):
        page["items"].insert(0, found)
    statuses = (*INTAKE_PARTS, "dismissed")
    return render(request, "events.html", viewer, page=page, statuses=statuses)


@router.get("/events/{event_id}")
def event(request: Request, db: DatabaseDep, viewer: Viewer, event_id: EventId) -> HTMLResponse:
    with db.snapshot() as conn:
        body = events_view.event_detail(conn, event_id)
        if body is None:
            raise NotFound(f"no event {event_id}")
        message = body["erp_message"] and outbox_view.get_message(conn, body["erp_message"]["id"])
    attempts = message["attempt_log"] if message else []
    return render(request, "event.html", viewer, event=body, attempts=attempts)


@router.get("/undelivered")
def undelivered(
    request: Request,
    db: DatabaseDep,
    viewer: Viewer,
    matching: MessageFilterQuery,
    limit: Limit = PAGE,
    cursor: pagination.Cursor = None,
) -> HTMLResponse:
    """Dead messages: what the ERP refused, or what failed every attempt."""
    where = replace(matching, status=DEAD)
    with db.snapshot() as conn:
        rows = outbox_view.list_messages(conn, where, limit + 1, _after(cursor))
        total = outbox_view.count_messages(conn, where)
    page = _page(rows, limit, "event_id")
    return render(request, "undelivered.html", viewer, page=page, total=total)


@router.get("/quarantine")
def quarantine(
    request: Request,
    db: DatabaseDep,
    viewer: Viewer,
    matching: EventFilterQuery,
    limit: Limit = PAGE,
    cursor: pagination.Cursor = None,
) -> HTMLResponse:
    where = replace(matching, status=Status.QUARANTINED.value)
    with db.snapshot() as conn:
        rows = events_view.list_events(conn, where, limit + 1, _after(cursor))
        total = events_view.count_matching(conn, where)
    page = _page(rows, limit, "id")
    return render(request, "quarantine.html", viewer, page=page, total=total)


@router.get("/reconciliation")
def reconciliation(
    request: Request,
    db: DatabaseDep,
    viewer: Viewer,
    view: Literal["transfers", "counts", "chunks"] = "transfers",
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    asn_id: TextQuery = None,
    count_id: TextQuery = None,
    payload_id: TextQuery = None,
    event_name: TextQuery = None,
    status: transfers.TransferStatus | None = None,
    drifted: bool | None = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: Limit = PAGE,
    cursor: pagination.Cursor = None,
) -> HTMLResponse:
    """Transfers (by origin location), count lines, incomplete chunk sets: the API's
    details, with their filters; `since`/`until` on each one's own time, as in the API."""
    start, end = timestamp("since", since), timestamp("until", until)
    with db.snapshot() as conn:
        totals = summary.summary(conn, tenant)
        if view == "transfers":
            where_t = transfers.TransferFilter(
                tenant=tenant,
                asn_id=asn_id,
                origin_location_id=location_id,
                status=status,
                since=start,
                until=end,
            )
            after_t = pagination.decode(cursor, (str, str))
            rows = transfers.list_transfers(conn, where_t, limit + 1, after_t)
            page = pagination.page(rows, limit, lambda r: [r["tenant"], r["asn_id"]])
        elif view == "counts":
            where_c = counts.CountFilter(
                tenant=tenant,
                location_id=location_id,
                product_id=product_id,
                count_id=count_id,
                drifted=drifted,
                since=start,
                until=end,
            )
            rows = counts.list_counts(conn, where_c, limit + 1, _after(cursor))
            page = _page(rows, limit, "id")
        else:
            where_k = chunks.ChunkFilter(
                tenant=tenant, name=event_name, payload_id=payload_id, since=start, until=end
            )
            after_k = pagination.decode(cursor, (str, str, str))
            rows = chunks.list_incomplete(conn, where_k, limit + 1, after_k)
            page = pagination.page(
                rows, limit, lambda r: [r["tenant"], r["event_name"], r["payload_id"]]
            )
    return render(
        request,
        "reconciliation.html",
        viewer,
        view=view,
        page=page,
        totals=totals,
        transfer_statuses=[s.value for s in transfers.TransferStatus],
    )


def _stock_filter(
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
) -> ledger_view.StockFilter:
    return ledger_view.StockFilter(tenant, location_id, product_id, stock_location)


StockFilterQuery = Annotated[ledger_view.StockFilter, Depends(_stock_filter)]


def _movement_filter(where: ledger_view.StockFilter) -> ledger_view.MovementFilter:
    return ledger_view.MovementFilter(
        tenant=where.tenant,
        location_id=where.location_id,
        product_id=where.product_id,
        stock_location=where.stock_location,
    )


@router.get("/stock")
def stock(
    request: Request,
    db: DatabaseDep,
    viewer: Viewer,
    where: StockFilterQuery,
    limit: Limit = PAGE,
    cursor: pagination.Cursor = None,
) -> HTMLResponse:
    """Positions and movements of a product or a location; nothing until one is asked for."""
    asked = any(v is not None for v in (where.location_id, where.product_id, where.stock_location))
    positions: list[dict[str, Any]] = []
    page: dict[str, Any] = {"items": [], "next_cursor": None}
    if asked:
        with db.snapshot() as conn:
            positions = ledger_view.stock_positions(conn, where, 1000, None)
            moves = ledger_view.list_movements(
                conn, _movement_filter(where), limit + 1, _after(cursor)
            )
        page = _page(moves, limit, "id")
    return render(
        request, "stock.html", viewer, asked=asked, positions=positions, page=page, kinds=Kind
    )


@router.get("/stock.csv")
def stock_csv(
    db: DatabaseDep,
    _viewer: Viewer,
    where: StockFilterQuery,
) -> Response:
    """The positions the stock page shows, as CSV (the API's `format=csv`)."""
    return ledger_route.stock_csv(db, where)


@router.get("/ledger.csv")
def ledger_csv(
    db: DatabaseDep,
    _viewer: Viewer,
    where: StockFilterQuery,
) -> Response:
    """Every movement the stock page's filters match, as CSV (the API's `format=csv`)."""
    return ledger_route.ledger_csv(db, _movement_filter(where))
