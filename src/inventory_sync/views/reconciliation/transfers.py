"""Transfers: each shipped ASN against the receipts that name it (PRODUCT.md section 6).

Everything is computed at query time from `shipment_line` and the `receipt` movements, so the
answer does not depend on arrival order: a receipt stored before its ASN matches as soon as the
ASN is stored.

Matching, per tenant: a receipt belongs to the ASN whose id its `asn_id` names. A receipt whose
`asn_id` is absent or names no known ASN belongs to every ASN with the same `shipment_ref`
(NewStore does not document that an ASN event's `id` is the `asn_id` receipts carry, so the
shipment reference is the fallback). A receipt that names an ASN id or a shipment reference and
matches no ASN is *unmatched*; receipts that name neither are ordinary receipts, not transfers.

Status of a transfer, from its per-product lines (difference = received - shipped):

- `in_transit`: nothing received yet;
- `discrepancy`: some product received over its shipped quantity, or received but not shipped,
  or received elsewhere than the ASN's named destination, or at more than one store; `reason`
  says which;
- `received`: every product received exactly;
- `partially_received`: otherwise (some products short, none over). A short receipt stays
  `partially_received` because NewStore may send further receipts against an open ASN.

The destination is the store whose receipts matched the ASN (null while nothing is received):
NewStore's ASN event has no known destination field. A destination the ASN does name
(`destination_location_id` and its aliases, `newstore.payloads.AsnCreated`) is shown apart, as
`named_destination_location_id`, and receipts elsewhere make the transfer a discrepancy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso
from inventory_sync.ledger.effects import Kind
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import inbound_event, ledger_movement, shipment_line
from inventory_sync.views.ledger import of_event

s = shipment_line
e = inbound_event
m = ledger_movement

RECEIVED_EVENT = "inventory_transaction.items_received"


class TransferStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    DISCREPANCY = "discrepancy"


@dataclass(frozen=True)
class TransferFilter:
    tenant: str | None = None
    asn_id: str | None = None
    origin_location_id: str | None = None
    destination_location_id: str | None = None
    shipment_ref: str | None = None
    transfer_order_ref: str | None = None
    status: TransferStatus | None = None
    since: datetime | None = None
    """On the ASN's `shipped_at` (inclusive)."""
    until: datetime | None = None
    """On the ASN's `shipped_at` (exclusive)."""


def _asns(
    where: TransferFilter,
    after: list[str] | None = None,
    *,
    keys: Sequence[tuple[str, str]] | None = None,
    limit: int | None = None,
) -> Subquery:
    """One row per (tenant, asn_id) with the ASN's header: filtered, strictly after `after`,
    among `keys` if given, at most `limit`."""
    query: Select[Any] = select(
        s.c.tenant,
        s.c.asn_id,
        # Every chunk of an ASN carries the same header; max() just picks it.
        func.max(s.c.origin_location_id).label("origin_location_id"),
        func.max(s.c.destination_location_id).label("destination_location_id"),
        func.max(s.c.transfer_order_ref).label("transfer_order_ref"),
        func.max(s.c.shipment_ref).label("shipment_ref"),
        func.min(s.c.shipped_at).label("shipped_at"),
    ).group_by(s.c.tenant, s.c.asn_id)
    query = narrow(
        query,
        [
            (s.c.tenant, where.tenant),
            (s.c.asn_id, where.asn_id),
            (s.c.origin_location_id, where.origin_location_id),
            (s.c.shipment_ref, where.shipment_ref),
            (s.c.transfer_order_ref, where.transfer_order_ref),
        ],
        period=s.c.shipped_at,
        since=where.since,
        until=where.until,
    )
    if after is not None:
        query = query.where(tuple_(s.c.tenant, s.c.asn_id) > tuple_(*after))
    if keys is not None:
        query = query.where(of_keys(s.c.tenant, s.c.asn_id, keys))
    if limit is not None:
        query = query.order_by(s.c.tenant, s.c.asn_id).limit(limit)
    return query.subquery("asn")


def of_keys(
    tenant: ColumnElement[Any], key: ColumnElement[Any], keys: Sequence[tuple[str, str]]
) -> ColumnElement[bool]:
    """`(tenant, key)` among `keys`, as one `tenant = ? AND key IN (...)` per tenant.

    Plain equality and IN let both backends use the (tenant, ...) indexes and estimate rows
    well; a row-value range or row IN list does neither reliably on PostgreSQL.
    """
    by_tenant: dict[str, list[str]] = {}
    for owner, value in keys:
        by_tenant.setdefault(owner, []).append(value)
    return or_(false(), *(and_(tenant == t, key.in_(v)) for t, v in by_tenant.items()))


def _asn_id_known(tenant: ColumnElement[Any], asn_id: ColumnElement[Any]) -> Any:
    known = shipment_line.alias("known")
    return exists().where(known.c.tenant == tenant, known.c.asn_id == asn_id)


def _shipment_ref_known(tenant: ColumnElement[Any], shipment_ref: ColumnElement[Any]) -> Any:
    known = shipment_line.alias("known_ref")
    return exists().where(known.c.tenant == tenant, known.c.shipment_ref == shipment_ref)


def _per_product(asn: Subquery) -> Subquery:
    """(tenant, asn_id, product_id, shipped, received) for every ASN of `asn`."""
    receipts = m.join(e, of_event(e.c.id))
    shipped = select(
        s.c.tenant,
        s.c.asn_id,
        s.c.product_id,
        s.c.quantity.label("shipped"),
        literal(0),
        null().label("receipt_location"),
    ).join(asn, and_(asn.c.tenant == s.c.tenant, asn.c.asn_id == s.c.asn_id))
    received = (m.c.product_id, literal(0), m.c.quantity, e.c.location_id)
    by_asn_id = (
        select(asn.c.tenant, asn.c.asn_id, *received)
        .select_from(receipts)
        .join(asn, and_(asn.c.tenant == e.c.tenant, asn.c.asn_id == e.c.asn_id))
        .where(m.c.kind == Kind.RECEIPT.value)
    )
    # Two separate joins rather than one OR join, so each can use its own index.
    by_shipment_ref = (
        select(asn.c.tenant, asn.c.asn_id, *received)
        .select_from(receipts)
        .join(asn, and_(asn.c.tenant == e.c.tenant, asn.c.shipment_ref == e.c.shipment_ref))
        .where(
            m.c.kind == Kind.RECEIPT.value,
            or_(e.c.asn_id.is_(None), ~_asn_id_known(e.c.tenant, e.c.asn_id)),
        )
    )
    rows = union_all(shipped, by_asn_id, by_shipment_ref).subquery("transfer_row")
    tenant, asn_id, product_id, shipped_qty, received_qty, location = rows.c
    return (
        select(
            tenant.label("tenant"),
            asn_id.label("asn_id"),
            product_id.label("product_id"),
            func.sum(shipped_qty).label("shipped"),
            func.sum(received_qty).label("received"),
            # The stores that received it: one, usually; min and max tell when there are more.
            func.min(location).label("first_store"),
            func.max(location).label("last_store"),
        )
        .group_by(tenant, asn_id, product_id)
        .subquery("transfer_line")
    )


def _with_status(asn: Subquery) -> Select[Any]:
    lines = _per_product(asn)
    totals = (
        select(
            lines.c.tenant,
            lines.c.asn_id,
            func.sum(lines.c.shipped).label("shipped"),
            func.sum(lines.c.received).label("received"),
            func.max(case((lines.c.received > lines.c.shipped, 1), else_=0)).label("over"),
            func.min(case((lines.c.received == lines.c.shipped, 1), else_=0)).label("exact"),
            func.min(lines.c.first_store).label("first_store"),
            func.max(lines.c.last_store).label("last_store"),
        )
        .group_by(lines.c.tenant, lines.c.asn_id)
        .subquery("transfer_total")
    )
    named = asn.c.destination_location_id
    first, last = totals.c.first_store, totals.c.last_store
    elsewhere = (first != last) | (named.is_not(None) & ((first != named) | (last != named)))
    status = case(
        (totals.c.received == 0, TransferStatus.IN_TRANSIT.value),
        (totals.c.over == 1, TransferStatus.DISCREPANCY.value),
        (elsewhere, TransferStatus.DISCREPANCY.value),
        (totals.c.exact == 1, TransferStatus.RECEIVED.value),
        else_=TransferStatus.PARTIALLY_RECEIVED.value,
    )
    return select(
        *(column for column in asn.c if column.name != "destination_location_id"),
        named.label("named_destination_location_id"),
        first.label("destination_location_id"),
        last.label("last_store"),
        totals.c.shipped.label("total_shipped"),
        totals.c.received.label("total_received"),
        status.label("status"),
    ).join(totals, and_(totals.c.tenant == asn.c.tenant, totals.c.asn_id == asn.c.asn_id))


def list_transfers(
    conn: Connection, where: TransferFilter, limit: int, after: list[str] | None
) -> list[dict[str, Any]]:
    """Up to `limit` transfers after the (tenant, asn_id) position `after`, with their lines."""
    # Without a filter on what matching decides, the page can be cut before that work is done.
    decided = where.status is None and where.destination_location_id is None
    inner_limit = limit if decided else None
    transfers = _with_status(_asns(where, after, limit=inner_limit)).subquery("transfer")
    query = select(transfers).order_by(transfers.c.tenant, transfers.c.asn_id).limit(limit)
    if where.status is not None:
        query = query.where(transfers.c.status == where.status.value)
    if where.destination_location_id is not None:
        query = query.where(transfers.c.destination_location_id == where.destination_location_id)
    headers = list(conn.execute(query))
    if not headers:
        return []

    page = _asns(TransferFilter(), keys=[(row.tenant, row.asn_id) for row in headers])
    lines = _per_product(page)
    line_rows = conn.execute(
        select(lines).order_by(lines.c.tenant, lines.c.asn_id, lines.c.product_id)
    )
    by_transfer: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in line_rows:
        shipped, received = int(row.shipped), int(row.received)
        by_transfer.setdefault((row.tenant, row.asn_id), []).append(
            {
                "product_id": row.product_id,
                "shipped": shipped,
                "received": received,
                "difference": received - shipped,
            }
        )
    items = []
    for row in headers:
        lines_of = by_transfer.get((row.tenant, row.asn_id), [])
        items.append(
            {
                "tenant": row.tenant,
                "asn_id": row.asn_id,
                "origin_location_id": row.origin_location_id,
                "destination_location_id": row.destination_location_id,
                "named_destination_location_id": row.named_destination_location_id,
                "transfer_order_ref": row.transfer_order_ref,
                "shipment_ref": row.shipment_ref,
                "shipped_at": iso(row.shipped_at),
                "status": row.status,
                "reason": _reason(row, lines_of) if row.status == "discrepancy" else None,
                "shipped": int(row.total_shipped),
                "received": int(row.total_received),
                "lines": lines_of,
            }
        )
    return items


def _reason(row: Any, lines: list[dict[str, Any]]) -> str:
    """Why a transfer is a discrepancy, in the words ops act on."""
    reasons = []
    over = [line["product_id"] for line in lines if line["shipped"] and line["difference"] > 0]
    unexpected = [line["product_id"] for line in lines if not line["shipped"] and line["received"]]
    if over:
        reasons.append("received more than shipped: " + ", ".join(over[:5]))
    if unexpected:
        reasons.append("received but not shipped: " + ", ".join(unexpected[:5]))
    first, last = row.destination_location_id, row.last_store
    named = row.named_destination_location_id
    stores = {first, last}
    if len(stores) > 1:
        reasons.append(f"received at more than one store, among them {first} and {last}")
    if named is not None and stores != {named}:
        elsewhere = min(stores - {named})
        reasons.append(f"received at {elsewhere}, not at the ASN's destination {named}")
    return "; ".join(reasons)


def count_by_status(conn: Connection, tenant: str | None) -> dict[str, int]:
    """Number of transfers in each status (every status present, zero when none)."""
    transfers = _with_status(_asns(TransferFilter(tenant=tenant))).subquery("transfer")
    counts = {status.value: 0 for status in TransferStatus}
    query = select(transfers.c.status, func.count()).group_by(transfers.c.status)
    for status, number in conn.execute(query):
        counts[status] = int(number)
    return counts


@dataclass(frozen=True)
class UnmatchedFilter:
    tenant: str | None = None
    location_id: str | None = None
    asn_id: str | None = None
    shipment_ref: str | None = None
    since: datetime | None = None
    """On the receipt's `occurred_at` (inclusive)."""
    until: datetime | None = None
    """On the receipt's `occurred_at` (exclusive)."""


def _unmatched(where: UnmatchedFilter) -> Select[Any]:
    """Accepted receipt events that name an ASN id or shipment ref no ASN answers to."""
    query = select(e).where(
        e.c.name == RECEIVED_EVENT,
        e.c.status == "accepted",
        or_(e.c.asn_id.is_not(None), e.c.shipment_ref.is_not(None)),
        ~_asn_id_known(e.c.tenant, e.c.asn_id),
        ~_shipment_ref_known(e.c.tenant, e.c.shipment_ref),
    )
    return narrow(
        query,
        [
            (e.c.tenant, where.tenant),
            (e.c.location_id, where.location_id),
            (e.c.asn_id, where.asn_id),
            (e.c.shipment_ref, where.shipment_ref),
        ],
        period=e.c.occurred_at,
        since=where.since,
        until=where.until,
    )


def list_unmatched(
    conn: Connection, where: UnmatchedFilter, limit: int, after_id: int | None
) -> list[dict[str, Any]]:
    """Unmatched receipt events in arrival order, each with its received lines."""
    query = _unmatched(where).order_by(e.c.id).limit(limit)
    if after_id is not None:
        query = query.where(e.c.id > after_id)
    events = list(conn.execute(query))
    if not events:
        return []
    lines: dict[int, list[dict[str, Any]]] = {}
    quantities = (
        select(m.c.event_id, m.c.product_id, func.sum(m.c.quantity).label("received"))
        .where(
            m.c.kind == Kind.RECEIPT.value,
            or_(*(of_event(row.id) for row in events)),
        )
        .group_by(m.c.event_id, m.c.product_id)
        .order_by(m.c.event_id, m.c.product_id)
    )
    for row in conn.execute(quantities):
        lines.setdefault(row.event_id, []).append(
            {"product_id": row.product_id, "received": int(row.received)}
        )
    return [
        {
            "event_id": row.id,
            "tenant": row.tenant,
            "payload_id": row.payload_id,
            "chunk_number": row.chunk_number,
            "location_id": row.location_id,
            "asn_id": row.asn_id,
            "shipment_ref": row.shipment_ref,
            "occurred_at": iso(row.occurred_at),
            "lines": lines.get(row.id, []),
        }
        for row in events
    ]


def count_unmatched(conn: Connection, tenant: str | None) -> int:
    found = _unmatched(UnmatchedFilter(tenant=tenant)).subquery("unmatched")
    return int(conn.execute(select(func.count()).select_from(found)).scalar_one())


def first_unmatched_asn_ids(conn: Connection, tenant: str | None, limit: int = 5) -> list[str]:
    """The ASN ids unmatched receipts name, in the order they first arrived: the ASN events
    to look for first."""
    found = _unmatched(UnmatchedFilter(tenant=tenant)).subquery("unmatched")
    query = (
        select(found.c.asn_id)
        .where(found.c.asn_id.is_not(None))
        .group_by(found.c.asn_id)
        .order_by(func.min(found.c.id))
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
