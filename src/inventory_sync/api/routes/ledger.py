"""`GET /v1/ledger` and `GET /v1/stock`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from inventory_sync.api import pagination
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


# A spreadsheet reads a cell that starts with one of these as a formula (OWASP's CSV
# injection); ids come from NewStore's users and are written as text, never run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(db: Database, where: ledger_view.MovementFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    with db.snapshot() as conn:
        for n, row in enumerate(ledger_view.stream_movements(conn, where), start=1):
            row["references"] = json.dumps(row["references"], ensure_ascii=False, sort_keys=True)
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/ledger",
    response_model=MovementPage,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
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
    format: Literal["json", "csv"] = "json",
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
        return StreamingResponse(
            _csv(db, where),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
        )
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = ledger_view.list_movements(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row["id"]])


@router.get("/stock", response_model=StockPage)
def list_stock(
    db: DatabaseDep,
    _role: ReadAccess,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
    tenant: TextQuery = None,
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Stock positions: the latest count plus later movements (`anchored`), or the sum of all
    movements where no count exists yet."""
    where = ledger_view.StockFilter(tenant, location_id, product_id, stock_location)
    after = pagination.decode(cursor, (str, str, str, str))
    with db.snapshot() as conn:
        rows = ledger_view.stock_positions(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row[k] for k in ledger_view.KEY])
