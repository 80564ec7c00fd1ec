"""`GET /v1/reconciliation` and its details: transfers, unmatched receipts, counts, chunks,
completeness per store; and the ERP's own stock compared with ours."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from inventory_sync.api import csv_export, pagination
from inventory_sync.api.auth import ReadAccess
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.problems import responses
from inventory_sync.api.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.api.schemas import (
    ChunkSetPage,
    CompletenessPage,
    CountPage,
    ErpStockComparison,
    Summary,
    TransferPage,
    UnmatchedReceiptPage,
)
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import erp_stock
from inventory_sync.settings import Settings
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views.reconciliation import chunks, completeness, counts, summary, transfers

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])

# CSV: one row per product line of a transfer or of an unmatched receipt, the transfer's or
# receipt's own fields repeated on each.
TRANSFER_CSV_COLUMNS = [
    "tenant",
    "asn_id",
    "origin_location_id",
    "destination_location_id",
    "named_destination_location_id",
    "transfer_order_ref",
    "shipment_ref",
    "shipped_at",
    "status",
    "reason",
    "product_id",
    "shipped",
    "received",
    "difference",
]
UNMATCHED_CSV_COLUMNS = [
    "event_id",
    "tenant",
    "payload_id",
    "chunk_number",
    "location_id",
    "asn_id",
    "shipment_ref",
    "occurred_at",
    "product_id",
    "received",
]
COUNT_CSV_COLUMNS = [
    "id",
    "tenant",
    "count_id",
    "event_id",
    "location_id",
    "stock_location",
    "product_id",
    "counted",
    "stock_on_hand",
    "variance",
    "expected",
    "drift",
    "anchored",
    "anchor_counted_at",
    "counted_at",
]
# The chunk-number lists are JSON arrays in one cell.
CHUNK_CSV_COLUMNS = [
    "tenant",
    "event_name",
    "payload_id",
    "total_chunks",
    "received_chunks",
    "missing_count",
    "missing_chunks",
    "quarantined_chunks",
    "first_received_at",
    "last_received_at",
]
COMPLETENESS_CSV_COLUMNS = [
    "tenant",
    "location_id",
    "last_counted_at",
    "counted_lines",
    "lines_with_drift",
    "drift_units",
    "stale_incomplete_chunk_sets",
    "quarantined_events",
    "score",
]


@router.get("", response_model=Summary, responses=responses("csv_unavailable"))
def get_summary(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    format: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Any:
    """Counts of events waiting for a look (`events`: `quarantined`, and `dismissed`, which an
    admin set aside and which no longer count as quarantined), transfers by status, receipts
    naming an unknown ASN (`unmatched_receipts`, and the first five ASN ids they name,
    `unmatched_receipt_asn_ids`), count lines whose drift is not zero, incomplete chunk sets, and
    the ERP sync backlog (`pending`, `delivered`, `dead`, `oldest_pending_age_seconds`)."""
    csv_export.refuse(format, "the reconciliation summary")
    with db.snapshot() as conn:
        return summary.summary(conn, tenant)


@router.get("/transfers", response_model=TransferPage, responses=csv_export.RESPONSES)
def list_transfers(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    asn_id: TextQuery = None,
    origin_location_id: TextQuery = None,
    destination_location_id: TextQuery = None,
    shipment_ref: TextQuery = None,
    transfer_order_ref: TextQuery = None,
    status: transfers.TransferStatus | None = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Shipped ASNs with their receipts per product (`shipped`, `received`, `difference` =
    received - shipped). Receipts match on `asn_id`, else on `shipment_ref`.
    `destination_location_id` is the store whose receipts matched (null while nothing is
    received); `named_destination_location_id` is the destination the ASN names, if any.
    Status: `in_transit` (nothing received), `received` (every product exact), `discrepancy` (any
    product over, or received without being shipped, or received elsewhere than the ASN named or
    at several stores; `reason` says which), `partially_received` (otherwise: some short).
    `since`/`until` filter on the ship date (`until` exclusive). Receipts naming an unknown ASN
    are at `/v1/reconciliation/transfers/unmatched`. `format=csv` streams every matching
    transfer, one row per product line."""
    where = transfers.TransferFilter(
        tenant=tenant,
        asn_id=asn_id,
        origin_location_id=origin_location_id,
        destination_location_id=destination_location_id,
        shipment_ref=shipment_ref,
        transfer_order_ref=transfer_order_ref,
        status=status,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )

    def position(row: dict[str, Any]) -> list[str]:
        return [row["tenant"], row["asn_id"]]

    if format == "csv":
        every = csv_export.every_row(
            db,
            lambda conn, size, after: transfers.list_transfers(conn, where, size, after),
            position,
        )
        return csv_export.response(
            "transfers", TRANSFER_CSV_COLUMNS, csv_export.per_line(every, "lines")
        )
    after = pagination.decode(cursor, (str, str))
    with db.snapshot() as conn:
        rows = transfers.list_transfers(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, position)


@router.get(
    "/transfers/unmatched",
    response_model=UnmatchedReceiptPage,
    responses=csv_export.RESPONSES,
)
def list_unmatched_receipts(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    asn_id: TextQuery = None,
    shipment_ref: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Receipt events that name an `asn_id` or `shipment_ref` matching no ASN we have seen, in
    arrival order, with their received lines. One arriving ASN moves them to `/transfers`.
    `since`/`until` filter on the receipt's `occurred_at` (`until` exclusive). `format=csv`
    streams every matching receipt, one row per product line."""
    where = transfers.UnmatchedFilter(
        tenant=tenant,
        location_id=location_id,
        asn_id=asn_id,
        shipment_ref=shipment_ref,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    if format == "csv":
        every = csv_export.every_row(
            db,
            lambda conn, size, after: transfers.list_unmatched(conn, where, size, after),
            lambda row: row["event_id"],
        )
        return csv_export.response(
            "unmatched-receipts", UNMATCHED_CSV_COLUMNS, csv_export.per_line(every, "lines")
        )
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = transfers.list_unmatched(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, lambda row: [row["event_id"]])


@router.get("/counts", response_model=CountPage, responses=csv_export.RESPONSES)
def list_counts(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    stock_location: TextQuery = None,
    product_id: TextQuery = None,
    count_id: TextQuery = None,
    drifted: bool | None = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Counted lines in arrival order: `counted`, NewStore's `stock_on_hand`, `variance` =
    counted - stock_on_hand, and where an earlier count anchors our ledger, `expected` (that
    count plus our movements up to this count) and `drift` = stock_on_hand - expected, the units
    NewStore booked that we have no event for (0 when every event arrived); both null when not
    anchored. `drifted=true` keeps lines with a non-zero drift. `since`/`until` filter
    on `counted_at` (`until` exclusive). `format=csv` streams every matching line."""
    where = counts.CountFilter(
        tenant=tenant,
        location_id=location_id,
        stock_location=stock_location,
        product_id=product_id,
        count_id=count_id,
        drifted=drifted,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    if format == "csv":
        every = csv_export.every_row(
            db,
            lambda conn, size, after: counts.list_counts(conn, where, size, after),
            lambda row: row["id"],
        )
        return csv_export.response("counts", COUNT_CSV_COLUMNS, every)
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = counts.list_counts(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, lambda row: [row["id"]])


@router.get("/chunks", response_model=ChunkSetPage, responses=csv_export.RESPONSES)
def list_chunks(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    event_name: TextQuery = None,
    payload_id: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Transactions whose chunks 1..total_chunks have not all been accepted: the chunk numbers
    still missing (the first 1000), and which of them are stored but quarantined (replay them).
    `since`/`until` filter on when the first chunk arrived (`until` exclusive). `format=csv`
    streams every matching set, the chunk-number lists as JSON arrays."""
    where = chunks.ChunkFilter(
        tenant=tenant,
        name=event_name,
        payload_id=payload_id,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )

    def position(row: dict[str, Any]) -> list[str]:
        return [row["tenant"], row["event_name"], row["payload_id"]]

    if format == "csv":
        every = csv_export.every_row(
            db, lambda conn, size, after: chunks.list_incomplete(conn, where, size, after), position
        )
        return csv_export.response("incomplete-chunks", CHUNK_CSV_COLUMNS, every)
    after = pagination.decode(cursor, (str, str, str))
    with db.snapshot() as conn:
        rows = chunks.list_incomplete(conn, where, limit + 1, after)
    return pagination.answer(rows, limit, position)


@router.get("/completeness", response_model=CompletenessPage, responses=csv_export.RESPONSES)
def list_completeness(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    since: TimeQuery = None,
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Per store, where events are being lost: `last_counted_at` (its last count ever);
    `counted_lines` (anchored count lines since `since`), `lines_with_drift`, `drift_units` (the
    sum of their absolute drifts) and `score`, the share of those lines with zero drift (null
    without any); `stale_incomplete_chunk_sets` (first chunk since `since`, still incomplete
    after NewStore's 15-minute delivery window); `quarantined_events` (received since `since`).
    `since` defaults to 30 days ago. Stores are listed when they have any of these or were ever
    counted, ordered by tenant and location. `format=csv` gives every store."""
    now = utcnow()
    where = completeness.CompletenessFilter(
        since=timestamp("since", since) or now - completeness.WINDOW,
        tenant=tenant,
        location_id=location_id,
    )
    after = pagination.decode(cursor, (str, str))
    with db.snapshot() as conn:
        rows = completeness.by_location(conn, where, now)
    if format == "csv":
        return csv_export.response("completeness", COMPLETENESS_CSV_COLUMNS, rows)
    if after is not None:
        rows = [row for row in rows if [row["tenant"], row["location_id"]] > after]
    return pagination.answer(rows[: limit + 1], limit, lambda r: [r["tenant"], r["location_id"]])


@router.get(
    "/erp",
    response_model=ErpStockComparison,
    responses=responses("csv_unavailable", "erp_stock_unreadable", "erp_unavailable"),
)
async def compare_erp_stock(
    request: Request,
    db: DatabaseDep,
    _role: ReadAccess,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
    tenant: TextQuery = None,
    format: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Any:
    """The ERP's stock read back (adapters that can: `tryton`) and compared with `/v1/stock`:
    `compared` positions, and `items`, each position whose ERP quantity differs or is unknown,
    with `on_hand` (ours), `erp_quantity`, `difference` (ERP minus ours) and `reason` (why the
    ERP has no quantity). 409 when the adapter cannot read stock; 503 when the ERP does not
    answer."""
    csv_export.refuse(format, "the comparison with the ERP")
    where = ledger_view.StockFilter(tenant, location_id, product_id, stock_location)

    def positions() -> list[dict[str, Any]]:
        with db.snapshot() as conn:
            return ledger_view.all_stock_positions(conn, where)

    settings: Settings = request.app.state.settings
    return await erp_stock.compare(settings, await asyncio.to_thread(positions))
