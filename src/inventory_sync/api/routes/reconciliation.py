"""`GET /v1/reconciliation` and its details: transfers, unmatched receipts, counts, chunks;
and the ERP's own stock compared with ours."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from inventory_sync.api import pagination
from inventory_sync.api.auth import ReadAccess
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.erp_sync import erp_stock
from inventory_sync.settings import Settings
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views.reconciliation import chunks, counts, summary, transfers

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])


@router.get("")
def get_summary(db: DatabaseDep, _role: ReadAccess, tenant: TextQuery = None) -> Any:
    """Counts of transfers by status, receipts naming an unknown ASN, count lines whose drift is
    not zero, incomplete chunk sets, and the ERP sync backlog (`pending`, `delivered`, `dead`,
    `oldest_pending_age_seconds`)."""
    with db.snapshot() as conn:
        return summary.summary(conn, tenant)


@router.get("/transfers")
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
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Shipped ASNs with their receipts per product (`shipped`, `received`, `difference` =
    received - shipped). Receipts match on `asn_id`, else on `shipment_ref`. Status:
    `in_transit` (nothing received), `received` (every product exact), `discrepancy` (any product
    over, or received without being shipped), `partially_received` (otherwise: some short).
    `since`/`until` filter on the ship date (`until` exclusive). Receipts naming an unknown ASN
    are at `/v1/reconciliation/transfers/unmatched`."""
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
    after = pagination.decode(cursor, (str, str))
    with db.snapshot() as conn:
        rows = transfers.list_transfers(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row["tenant"], row["asn_id"]])


@router.get("/transfers/unmatched")
def list_unmatched_receipts(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    asn_id: TextQuery = None,
    shipment_ref: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Receipt events that name an `asn_id` or `shipment_ref` matching no ASN we have seen, in
    arrival order, with their received lines. One arriving ASN moves them to `/transfers`.
    `since`/`until` filter on the receipt's `occurred_at` (`until` exclusive)."""
    where = transfers.UnmatchedFilter(
        tenant=tenant,
        location_id=location_id,
        asn_id=asn_id,
        shipment_ref=shipment_ref,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = transfers.list_unmatched(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row["event_id"]])


@router.get("/counts")
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
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Counted lines in arrival order: `counted`, NewStore's `stock_on_hand`, `variance` =
    counted - stock_on_hand, and where an earlier count anchors our ledger, `expected` (that
    count plus our movements up to this count) and `drift` = expected - stock_on_hand; both null
    when not anchored. `drifted=true` keeps lines with a non-zero drift. `since`/`until` filter
    on `counted_at` (`until` exclusive)."""
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
    position = pagination.decode(cursor, (int,))
    after = int(position[0]) if position else None
    with db.snapshot() as conn:
        rows = counts.list_counts(conn, where, limit + 1, after)
    return pagination.page(rows, limit, lambda row: [row["id"]])


@router.get("/chunks")
def list_chunks(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    event_name: TextQuery = None,
    payload_id: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Transactions whose chunks 1..total_chunks have not all been accepted: the chunk numbers
    still missing (the first 1000), and which of them are stored but quarantined (replay them).
    `since`/`until` filter on when the first chunk arrived (`until` exclusive)."""
    where = chunks.ChunkFilter(
        tenant=tenant,
        name=event_name,
        payload_id=payload_id,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )
    after = pagination.decode(cursor, (str, str, str))
    with db.snapshot() as conn:
        rows = chunks.list_incomplete(conn, where, limit + 1, after)
    return pagination.page(
        rows, limit, lambda row: [row["tenant"], row["event_name"], row["payload_id"]]
    )


@router.get(
    "/erp",
    responses={
        409: {"description": "The adapter cannot read the ERP's stock."},
        503: {"description": "The ERP (or the database) did not answer; retry later."},
    },
)
async def compare_erp_stock(
    request: Request,
    db: DatabaseDep,
    _role: ReadAccess,
    location_id: TextQuery = None,
    product_id: TextQuery = None,
    stock_location: TextQuery = None,
    tenant: TextQuery = None,
) -> Any:
    """The ERP's stock read back (adapters that can: `tryton`) and compared with `/v1/stock`:
    `compared` positions, and `items`, each position whose ERP quantity differs or is unknown,
    with `on_hand` (ours), `erp_quantity`, `difference` (ERP minus ours) and `reason` (why the
    ERP has no quantity). 409 when the adapter cannot read stock; 503 when the ERP does not
    answer."""
    where = ledger_view.StockFilter(tenant, location_id, product_id, stock_location)

    def positions() -> list[dict[str, Any]]:
        with db.snapshot() as conn:
            return ledger_view.all_stock_positions(conn, where)

    settings: Settings = request.app.state.settings
    return await erp_stock.compare(settings, await asyncio.to_thread(positions))
