"""`GET /v1/reconciliation` and its details: transfers, unmatched receipts, counts, chunks,
completeness per store."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from inventory_sync.api import pagination
from inventory_sync.api.auth import ReadAccess
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.queryparams import TextQuery, TimeQuery, timestamp
from inventory_sync.api.schemas import (
    ChunkSetPage,
    CompletenessPage,
    CountPage,
    Summary,
    TransferPage,
    UnmatchedReceiptPage,
)
from inventory_sync.clock import utcnow
from inventory_sync.views.reconciliation import chunks, completeness, counts, summary, transfers

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])


@router.get("", response_model=Summary)
def get_summary(db: DatabaseDep, _role: ReadAccess, tenant: TextQuery = None) -> Any:
    """Counts of transfers by status, receipts naming an unknown ASN (`unmatched_receipts`, and
    the first five ASN ids they name, `unmatched_receipt_asn_ids`), count lines whose drift is
    not zero, incomplete chunk sets, and the ERP sync backlog (`pending`, `delivered`, `dead`,
    `oldest_pending_age_seconds`)."""
    with db.snapshot() as conn:
        return summary.summary(conn, tenant)


@router.get("/transfers", response_model=TransferPage)
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
    received - shipped). Receipts match on `asn_id`, else on `shipment_ref`.
    `destination_location_id` is the store whose receipts matched (null while nothing is
    received); `named_destination_location_id` is the destination the ASN names, if any.
    Status: `in_transit` (nothing received), `received` (every product exact), `discrepancy` (any
    product over, or received without being shipped, or received elsewhere than the ASN named or
    at several stores; `reason` says which), `partially_received` (otherwise: some short).
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


@router.get("/transfers/unmatched", response_model=UnmatchedReceiptPage)
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


@router.get("/counts", response_model=CountPage)
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
    count plus our movements up to this count) and `drift` = stock_on_hand - expected, the units
    NewStore booked that we have no event for (0 when every event arrived); both null when not
    anchored. `drifted=true` keeps lines with a non-zero drift. `since`/`until` filter
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


@router.get("/chunks", response_model=ChunkSetPage)
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


@router.get("/completeness", response_model=CompletenessPage)
def list_completeness(
    db: DatabaseDep,
    _role: ReadAccess,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    since: TimeQuery = None,
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Per store, where events are being lost: `last_counted_at` (its last count ever);
    `counted_lines` (anchored count lines since `since`), `lines_with_drift`, `drift_units` (the
    sum of their absolute drifts) and `score`, the share of those lines with zero drift (null
    without any); `stale_incomplete_chunk_sets` (first chunk since `since`, still incomplete
    after NewStore's 15-minute delivery window); `quarantined_events` (received since `since`).
    `since` defaults to 30 days ago. Stores are listed when they have any of these or were ever
    counted, ordered by tenant and location."""
    now = utcnow()
    where = completeness.CompletenessFilter(
        since=timestamp("since", since) or now - completeness.WINDOW,
        tenant=tenant,
        location_id=location_id,
    )
    after = pagination.decode(cursor, (str, str))
    with db.snapshot() as conn:
        rows = completeness.by_location(conn, where, now)
    if after is not None:
        rows = [row for row in rows if [row["tenant"], row["location_id"]] > after]
    return pagination.page(rows[: limit + 1], limit, lambda r: [r["tenant"], r["location_id"]])
