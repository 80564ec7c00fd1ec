"""`GET /v1/ledger` and `GET /v1/stock`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from inventory_sync.api import csv_export, pagination
from inventory_sync.api.auth import ReadAccess
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.api.schemas import MovementPage, StockPage
from inventory_sync.ledger.effects import SPAN, Kind
from inventory_sync.storage.database import Database
from inventory_sync.views import ledger as ledger_view

router = APIRouter(prefix="/v1", tags=["ledger"])
# The largest event id a movement id can hold (`ledger.effects.movement_id`); beyond it no
# event has movements, and the id range of one would not fit in 64 bits.
MAX_EVENT_ID = (2**63 - 1) // SPAN

CSV_COLUMNS = [
    "id",
    "tenant",
    "location_id",
    "stock_location",
    "product_id",
    "quantity",
    "kind",
    "occurred_at",
    "recorded_at",
    "event_id",
    "event_name",
    "line_number",
    "references",
]


def _movements(db: Database, where: ledger_view.MovementFilter) -> Iterator[dict[str, Any]]:
    return csv_export.every_row(
        db,
        lambda conn, limit, after: ledger_view.list_movements(conn, where, limit, after),
        lambda row: row["id"],
    )


def ledger_csv(db: Database, where: ledger_view.MovementFilter) -> StreamingResponse:
    """Every matching movement as CSV (the console's download too)."""
    return csv_export.response("ledger", CSV_COLUMNS, _movements(db, where))


@router.get("/ledger", response_model=MovementPage, responses=csv_export.RESPONSES)
def list_ledger(
    db: DatabaseDep,
    _role: ReadAccess,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
    kind: Kind | None = None,
    tenant: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    event_id: Annotated[int | None, Query(ge=1, le=MAX_EVENT_ID)] = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Ledger movements in recording order. `since`/`until` filter on `occurred_at`
    (`until` exclusive). `format=csv` streams every matching movement, ignoring `limit`."""
    where = ledger_view.MovementFilter(
        tenant=tenant,
        location_id=location_id,
        product_id=product_id,
        stock_location=stock_location,
        kind=kind.value if kind else None,
        since=timestamp("since", since),
        until=timestamp("until", until),
        event_id=event_id,
    )
    if format == "csv":
        return ledger_csv(db, where)
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = ledger_view.list_movements(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, lambda row: [row["id"]])


STOCK_CSV_COLUMNS = [
    *ledger_view.KEY,
    "on_hand",
    "anchored",
    "last_count_counted",
    "last_count_stock_on_hand",
    "last_count_counted_at",
]


def _flat_position(position: dict[str, Any]) -> dict[str, Any]:
    last = position["last_count"] or {}
    return {**position, **{f"last_count_{k}": v for k, v in last.items()}}


def stock_csv(db: Database, where: ledger_view.StockFilter) -> StreamingResponse:
    """Every matching position as CSV (the console's download too)."""
    every = csv_export.every_row(
        db,
        lambda conn, limit, after: ledger_view.stock_positions(conn, where, limit, after),
        lambda row: [row[k] for k in ledger_view.KEY],
    )
    return csv_export.response("stock", STOCK_CSV_COLUMNS, map(_flat_position, every))


@router.get("/stock", response_model=StockPage, responses=csv_export.RESPONSES)
def list_stock(
    db: DatabaseDep,
    _role: ReadAccess,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
    tenant: TextQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Stock positions: the latest count plus later movements (`anchored`), or the sum of all
    movements where no count exists yet. `format=csv` streams every matching position, with
    `last_count` as three columns `last_count_counted`, `last_count_stock_on_hand` and
    `last_count_counted_at`."""
    where = ledger_view.StockFilter(tenant, location_id, product_id, stock_location)
    if format == "csv":
        return stock_csv(db, where)
    after = pagination.decode(cursor, (str, str, str, str))
    with db.snapshot() as conn:
        rows = ledger_view.stock_positions(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, lambda row: [row[k] for k in ledger_view.KEY])
