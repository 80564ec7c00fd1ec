"""Pure rules: what a validated NewStore event does to the ledger.

No I/O here. `translate()` turns one event into an `Effect`: signed movements, count
observations and ASN shipment lines, which the store writes in one transaction together with
the event and its ERP document (`ledger.documents`).

An event has up to thousands of item lines, so an effect holds its rows as columns (entry i of
every list is row i), built by one comprehension per column: an object per row cost ten times
as much and was the largest part of translating a large event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from inventory_sync.newstore import payloads

MAIN = "main"

# A movement's id is its place in the ledger: its event's id, then its line, then its leg
# (`movement_id`). So the movements of an event are one range of the primary key, found
# without an index of their own, and ids need no sequence.
_LINE_BITS = 20
MAX_LINES = 2**_LINE_BITS - 1
"""Lines an event may have: `movement_id` keeps 20 bits for the line and 1 for the leg. Ids
stay below 2**53, exact in every JSON reader, for the first 2**32 events."""


def movement_id(event_id: int, line_number: int, leg: int) -> int:
    return (event_id << (_LINE_BITS + 1)) | (line_number << 1) | leg


def movement_ids(event_id: int) -> tuple[int, int]:
    """The first and last movement id an event may have."""
    return movement_id(event_id, 0, 0), movement_id(event_id + 1, 0, 0) - 1


SPAN = movement_id(1, 0, 0)
"""`movement_id(e, l, g)` is `e * SPAN + 2 * l + g`: how queries express an event's range."""


class Kind(StrEnum):
    """Kinds of ledger movement."""

    RECEIPT = "receipt"
    ADJUSTMENT = "adjustment"
    TRANSFER_OUT = "transfer_out"
    RETURN = "return"
    SALE = "sale"
    """A unit handed over or shipped to a customer from the store's `main`."""
    COUNT_VARIANCE = "count_variance"
    """count - stock_on_hand as NewStore saw it. Informational: stock positions are anchored on
    the count itself, so these rows never enter a position sum."""


class DocumentType(StrEnum):
    RECEIPT = "inventory.receipt"
    ADJUSTMENT = "inventory.adjustment"
    TRANSFER_OUT = "inventory.transfer_out"
    TRANSFER_SHIPPED = "inventory.transfer_shipped"
    COUNT = "inventory.count"
    RETURN = "inventory.return"
    SALE = "inventory.sale"


class Unprocessable(ValueError):
    """The event is well-formed but breaks a ledger rule; it is quarantined with this message."""


Identifiers = dict[str, Any] | None


class Movement(NamedTuple):
    """One row of `Movements`, for reading them one at a time."""

    stock_location: str
    product_id: str
    quantity: int
    line_number: int
    leg: int
    references: dict[str, Any]
    external_identifiers: Identifiers


@dataclass(frozen=True, slots=True)
class Movements:
    """An event's signed ledger movements, all of one kind, as columns."""

    kind: Kind
    stock_location: list[str]
    product_id: list[str]
    quantity: list[int]
    line_number: list[int]
    references: dict[str, Any]
    """The references of every movement, except where `line_references` has its own."""
    leg: list[int] | None = None
    """0 for the only or debit side of a line, 1 for the credit side of a move; None: all 0."""
    line_references: list[dict[str, Any] | None] | None = None
    """Per movement, references of its own (the event's plus the line's), or None."""
    external_identifiers: list[Identifiers] | None = None
    """Per movement, the line's `external_identifiers`; None when no line has any."""

    def __len__(self) -> int:
        return len(self.quantity)

    def __iter__(self) -> Iterator[Movement]:
        n = len(self)
        legs = self.leg or [0] * n
        refs = self.line_references or [None] * n
        ids = self.external_identifiers or [None] * n
        for i in range(n):
            yield Movement(
                self.stock_location[i],
                self.product_id[i],
                self.quantity[i],
                self.line_number[i],
                legs[i],
                refs[i] or self.references,
                ids[i],
            )


@dataclass(frozen=True, slots=True)
class Counts:
    """The absolute observations of a cycle count, as columns."""

    stock_location: list[str]
    product_id: list[str]
    counted: list[int]
    stock_on_hand: list[int]
    line_number: list[int]

    def __len__(self) -> int:
        return len(self.counted)


@dataclass(frozen=True, slots=True)
class Shipment:
    """What an ASN says was shipped, as columns."""

    destination_location_id: str | None
    transfer_order_ref: str | None
    shipment_ref: str | None
    product_id: list[str]
    quantity: list[int]
    line_number: list[int]
    external_identifiers: list[Identifiers]

    def __len__(self) -> int:
        return len(self.quantity)


@dataclass(frozen=True, slots=True)
class Effect:
    document_type: DocumentType
    location_id: str
    occurred_at: datetime
    references: dict[str, Any]
    movements: Movements | None = None
    counts: Counts | None = None
    shipment: Shipment | None = None


def _refs(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _occurred(value: datetime | None, published_at: datetime | None, name: str) -> datetime:
    if value is not None:
        return value
    if published_at is not None:
        return published_at
    raise Unprocessable(f"payload.{name}: missing, and the envelope has no published_at either")


def _identifiers(items: list[Any]) -> list[Identifiers] | None:
    identifiers = [item.external_identifiers for item in items]
    return None if identifiers.count(None) == len(identifiers) else identifiers


def _line_references(
    references: dict[str, Any], identifiers: list[Identifiers] | None
) -> list[dict[str, Any] | None] | None:
    if identifiers is None:
        return None
    return [{**references, "external_identifiers": i} if i else None for i in identifiers]


def _one_leg(
    kind: Kind,
    items: list[Any],
    quantities: list[int],
    references: dict[str, Any],
    stock_locations: list[str] | None = None,
    line_references: list[dict[str, Any] | None] | None = None,
) -> Movements:
    identifiers = _identifiers(items)
    return Movements(
        kind,
        stock_locations or [MAIN] * len(items),
        [item.product_id for item in items],
        quantities,
        list(range(1, len(items) + 1)),
        references,
        line_references=line_references or _line_references(references, identifiers),
        external_identifiers=identifiers,
    )


def translate(event: payloads.HandledEvent, return_locations: Mapping[str, str]) -> Effect:
    """The ledger effect of one validated event (one chunk)."""
    if len(event.payload.items) > MAX_LINES:
        raise Unprocessable(
            f"payload.items: {len(event.payload.items)} lines, more than the {MAX_LINES} "
            "one event may have; NewStore sends larger transactions in chunks"
        )
    published_at = event.published_at
    match event.payload:
        case payloads.ItemsReceived() as payload:
            refs = _refs(
                asn_id=payload.asn_id,
                order_ref=payload.order_ref,
                shipment_ref=payload.shipment_ref,
            )
            items = payload.items
            return Effect(
                DocumentType.RECEIPT,
                payload.location_id,
                _occurred(payload.processed_at, published_at, "processed_at"),
                refs,
                _one_leg(Kind.RECEIPT, items, [item.quantity for item in items], refs),
            )
        case payloads.AdjustmentCreated() as payload:
            return _adjustment(payload, published_at)
        case payloads.ItemsReadyForHandover() as payload:
            refs = _refs(
                transfer_order_ref=payload.transfer_order_ref,
                shipment_ref=payload.shipment_ref,
                order_ref=payload.order_ref,
            )
            handed = payload.items
            # A line without a quantity is one unit.
            quantities = [-1 if i.quantity is None else -i.quantity for i in handed]
            return Effect(
                DocumentType.TRANSFER_OUT,
                payload.location_id,
                _occurred(payload.processed_at, published_at, "processed_at"),
                refs,
                _one_leg(Kind.TRANSFER_OUT, handed, quantities, refs),
            )
        case payloads.AsnCreated() as payload:
            return _asn(payload, published_at)
        case payloads.ItemsCounted() as payload:
            return _count(payload, published_at)
        case payloads.ReturnProcessed() as payload:
            return _return(payload, published_at, return_locations)
        case payloads.ItemsCompleted() as payload:
            return _sale(payload, published_at)
    raise TypeError(f"unhandled payload {type(event.payload).__name__}")  # pragma: no cover


def _sale(payload: payloads.ItemsCompleted, published_at: datetime | None) -> Effect:
    if published_at is None:
        raise Unprocessable(
            "published_at: missing; a fulfillment_request.items_completed has no time of its own"
        )
    refs = _refs(
        order_id=payload.order_id,
        service_level=payload.service_level,
        logical_timestamp=payload.logical_timestamp,
    )
    # Sales leave `main` only, and a line is one unit.
    movements = _one_leg(Kind.SALE, payload.items, [-1] * len(payload.items), refs)
    return Effect(DocumentType.SALE, payload.location_id, published_at, refs, movements)


def _return(
    payload: payloads.ReturnProcessed,
    published_at: datetime | None,
    return_locations: Mapping[str, str],
) -> Effect:
    refs = _refs(order_id=payload.order_id)
    items = payload.items
    locations = [
        MAIN if i.condition_code is None else return_locations.get(i.condition_code, MAIN)
        for i in items
    ]
    line_refs: list[dict[str, Any] | None] = [
        {
            **refs,
            **_refs(
                external_identifiers=i.external_identifiers or None,
                return_reason=i.return_reason,
                condition_code=i.condition_code,
                item_condition=i.item_condition,
            ),
        }
        for i in items
    ]
    return Effect(
        DocumentType.RETURN,
        payload.location_id,
        _occurred(payload.returned_at, published_at, "returned_at"),
        refs,
        _one_leg(Kind.RETURN, items, [i.quantity for i in items], refs, locations, line_refs),
    )


def _adjustment(payload: payloads.AdjustmentCreated, published_at: datetime | None) -> Effect:
    origin = payload.origin_stock_location_name or None
    destination = payload.destination_stock_location_name or None
    if origin is None and destination is None:
        raise Unprocessable(
            "payload: an adjustment needs origin_stock_location_name, "
            "destination_stock_location_name or both"
        )
    refs = _refs(
        adjustment_type=payload.adjustment_type,
        adjustment_reason=payload.adjustment_reason,
        origin_stock_location_name=origin,
        destination_stock_location_name=destination,
        note=payload.note,
    )
    items = payload.items
    occurred_at = _occurred(payload.processed_at, published_at, "processed_at")
    # Each line debits the origin (leg 0) and credits the destination (leg 1), where named.
    if destination is None:
        assert origin is not None
        movements = _one_leg(
            Kind.ADJUSTMENT, items, [-i.quantity for i in items], refs, [origin] * len(items)
        )
        return Effect(DocumentType.ADJUSTMENT, payload.location_id, occurred_at, refs, movements)
    if origin is None:
        movements = _one_leg(
            Kind.ADJUSTMENT, items, [i.quantity for i in items], refs, [destination] * len(items)
        )
        movements = dataclasses.replace(movements, leg=[1] * len(items))
        return Effect(DocumentType.ADJUSTMENT, payload.location_id, occurred_at, refs, movements)
    identifiers = _identifiers(items)
    twice = [i for i in identifiers for _ in (0, 1)] if identifiers is not None else None
    movements = Movements(
        Kind.ADJUSTMENT,
        [origin, destination] * len(items),
        [i.product_id for i in items for _ in (0, 1)],
        [q for i in items for q in (-i.quantity, i.quantity)],
        [n for n in range(1, len(items) + 1) for _ in (0, 1)],
        refs,
        leg=[0, 1] * len(items),
        line_references=_line_references(refs, twice),
        external_identifiers=twice,
    )
    return Effect(DocumentType.ADJUSTMENT, payload.location_id, occurred_at, refs, movements)


def _asn(payload: payloads.AsnCreated, published_at: datetime | None) -> Effect:
    refs = _refs(
        asn_id=payload.id,
        transfer_order_ref=payload.transfer_order_ref,
        shipment_ref=payload.shipment_ref,
        destination_location_id=payload.destination_location_id,
    )
    items = payload.items
    shipment = Shipment(
        payload.destination_location_id,
        payload.transfer_order_ref,
        payload.shipment_ref,
        [i.product_id for i in items],
        [i.quantity for i in items],
        list(range(1, len(items) + 1)),
        [i.external_identifiers for i in items],
    )
    return Effect(
        DocumentType.TRANSFER_SHIPPED,
        payload.location_id,
        _occurred(payload.shipment_date, published_at, "shipment_date"),
        refs,
        shipment=shipment,
    )


def _count(payload: payloads.ItemsCounted, published_at: datetime | None) -> Effect:
    refs = _refs(count_type=payload.count_type)
    items = payload.items
    default = payload.stock_location or MAIN
    locations = [i.stock_location or default for i in items]
    products = [i.product_id for i in items]
    numbers = list(range(1, len(items) + 1))
    counted = [i.count for i in items]
    on_record = [i.stock_on_hand for i in items]
    variances = [c - s for c, s in zip(counted, on_record, strict=True)]
    return Effect(
        DocumentType.COUNT,
        payload.location_id,
        _occurred(payload.completed_at, published_at, "completed_at"),
        refs,
        Movements(Kind.COUNT_VARIANCE, locations, products, variances, numbers, refs),
        Counts(locations, products, counted, on_record, numbers),
    )
