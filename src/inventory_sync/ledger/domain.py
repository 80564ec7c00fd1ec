"""Pure rules: what a validated NewStore event does to the ledger and what the ERP is told.

No I/O here. `translate()` turns one event into an `Effect`: signed movements, count
observations, ASN shipment lines and the lines of the ERP document, all of which the caller
writes in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from inventory_sync.webhooks import schemas

MAIN = "main"


class Kind(StrEnum):
    """Kinds of ledger movement."""

    RECEIPT = "receipt"
    ADJUSTMENT = "adjustment"
    TRANSFER_OUT = "transfer_out"
    RETURN = "return"
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


class Unprocessable(ValueError):
    """The event is well-formed but breaks a ledger rule; it is quarantined with this message."""


# Lines are NamedTuples, not dataclasses: an event has up to thousands of them, and a frozen
# dataclass costs several times more to build (translate() showed in the intake profile).
class Movement(NamedTuple):
    stock_location: str
    product_id: str
    quantity: int
    kind: Kind
    line_number: int
    leg: int
    references: dict[str, Any]


class CountObservation(NamedTuple):
    stock_location: str
    product_id: str
    counted: int
    stock_on_hand: int
    line_number: int


class ShipmentLine(NamedTuple):
    product_id: str
    quantity: int
    line_number: int


class DocumentLine(NamedTuple):
    product_id: str
    stock_location: str
    quantity_delta: int
    external_identifiers: dict[str, Any] | None = None
    counted: int | None = None
    stock_on_hand: int | None = None
    quantity_shipped: int | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "product_id": self.product_id,
            "stock_location": self.stock_location,
            "quantity_delta": self.quantity_delta,
        }
        if self.external_identifiers is not None:
            body["external_identifiers"] = self.external_identifiers
        if self.counted is not None:
            body["counted"] = self.counted
        if self.stock_on_hand is not None:
            body["stock_on_hand"] = self.stock_on_hand
        if self.quantity_shipped is not None:
            body["quantity_shipped"] = self.quantity_shipped
        return body


@dataclass(frozen=True)
class Shipment:
    destination_location_id: str | None
    transfer_order_ref: str | None
    shipment_ref: str | None
    lines: list[ShipmentLine]


@dataclass(frozen=True)
class Effect:
    document_type: DocumentType
    location_id: str
    occurred_at: datetime
    references: dict[str, Any]
    movements: list[Movement] = field(default_factory=list)
    counts: list[CountObservation] = field(default_factory=list)
    shipment: Shipment | None = None
    document_lines: list[DocumentLine] = field(default_factory=list)


def _refs(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _occurred(value: datetime | None, published_at: datetime | None, name: str) -> datetime:
    if value is not None:
        return value
    if published_at is not None:
        return published_at
    raise Unprocessable(f"payload.{name}: missing, and the envelope has no published_at either")


def _single_leg(
    payload: schemas.ItemsReceived | schemas.ItemsReadyForHandover | schemas.ReturnProcessed,
    kind: Kind,
    sign: int,
    references: dict[str, Any],
    stock_location_of: Any,
) -> tuple[list[Movement], list[DocumentLine]]:
    movements, lines = [], []
    # Decided once: isinstance on a pydantic model class is slow enough to show per line.
    returns = isinstance(payload, schemas.ReturnProcessed)
    for number, item in enumerate(payload.items, start=1):
        location = stock_location_of(item)
        line_refs = references
        if item.external_identifiers or returns:
            line_refs = dict(references)
            if item.external_identifiers:
                line_refs["external_identifiers"] = item.external_identifiers
        if returns:
            assert isinstance(item, schemas.ReturnLine)
            line_refs.update(
                _refs(
                    return_reason=item.return_reason,
                    condition_code=item.condition_code,
                    item_condition=item.item_condition,
                )
            )
        delta = sign * item.quantity
        # tuple.__new__ builds the same NamedTuples without the Python frame of their generated
        # __new__, a large share of translate() at 500 lines; DocumentLine's defaults are then
        # given in full.
        movements.append(
            tuple.__new__(Movement, (location, item.product_id, delta, kind, number, 0, line_refs))
        )
        lines.append(
            tuple.__new__(
                DocumentLine,
                (item.product_id, location, delta, item.external_identifiers, None, None, None),
            )
        )
    return movements, lines


def translate(
    payload: schemas.HandledPayload,
    published_at: datetime | None,
    return_locations: Mapping[str, str],
) -> Effect:
    """The ledger effect and ERP document lines of one validated event (one chunk)."""
    match payload:
        case schemas.ItemsReceived():
            refs = _refs(
                asn_id=payload.asn_id,
                order_ref=payload.order_ref,
                shipment_ref=payload.shipment_ref,
            )
            movements, lines = _single_leg(payload, Kind.RECEIPT, 1, refs, lambda _: MAIN)
            return Effect(
                DocumentType.RECEIPT,
                payload.location_id,
                _occurred(payload.processed_at, published_at, "processed_at"),
                refs,
                movements,
                document_lines=lines,
            )
        case schemas.AdjustmentCreated():
            return _adjustment(payload, published_at)
        case schemas.ItemsReadyForHandover():
            refs = _refs(
                transfer_order_ref=payload.transfer_order_ref,
                shipment_ref=payload.shipment_ref,
                order_ref=payload.order_ref,
            )
            movements, lines = _single_leg(payload, Kind.TRANSFER_OUT, -1, refs, lambda _: MAIN)
            return Effect(
                DocumentType.TRANSFER_OUT,
                payload.location_id,
                _occurred(payload.processed_at, published_at, "processed_at"),
                refs,
                movements,
                document_lines=lines,
            )
        case schemas.AsnCreated():
            return _asn(payload, published_at)
        case schemas.ItemsCounted():
            return _count(payload, published_at)
        case schemas.ReturnProcessed():
            refs = _refs(order_id=payload.order_id)

            def returned_to(item: schemas.ReturnLine) -> str:
                code = item.condition_code
                return return_locations.get(code, MAIN) if code is not None else MAIN

            movements, lines = _single_leg(payload, Kind.RETURN, 1, refs, returned_to)
            return Effect(
                DocumentType.RETURN,
                payload.location_id,
                _occurred(payload.returned_at, published_at, "returned_at"),
                refs,
                movements,
                document_lines=lines,
            )
    raise TypeError(f"unhandled payload type {type(payload).__name__}")  # pragma: no cover


def _adjustment(payload: schemas.AdjustmentCreated, published_at: datetime | None) -> Effect:
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
    movements, lines = [], []
    for number, item in enumerate(payload.items, start=1):
        line_refs = refs
        if item.external_identifiers:
            line_refs = {**refs, "external_identifiers": item.external_identifiers}
        legs = [(origin, -item.quantity), (destination, item.quantity)]
        for leg, (stock_location, delta) in enumerate(legs):
            if stock_location is None:
                continue
            movements.append(
                Movement(
                    stock_location, item.product_id, delta, Kind.ADJUSTMENT, number, leg, line_refs
                )
            )
            lines.append(
                DocumentLine(item.product_id, stock_location, delta, item.external_identifiers)
            )
    return Effect(
        DocumentType.ADJUSTMENT,
        payload.location_id,
        _occurred(payload.processed_at, published_at, "processed_at"),
        refs,
        movements,
        document_lines=lines,
    )


def _asn(payload: schemas.AsnCreated, published_at: datetime | None) -> Effect:
    refs = _refs(
        asn_id=payload.id,
        transfer_order_ref=payload.transfer_order_ref,
        shipment_ref=payload.shipment_ref,
        destination_location_id=payload.destination_location_id,
    )
    shipment = Shipment(
        payload.destination_location_id,
        payload.transfer_order_ref,
        payload.shipment_ref,
        [ShipmentLine(i.product_id, i.quantity, n) for n, i in enumerate(payload.items, start=1)],
    )
    lines = [
        DocumentLine(i.product_id, MAIN, 0, i.external_identifiers, quantity_shipped=i.quantity)
        for i in payload.items
    ]
    return Effect(
        DocumentType.TRANSFER_SHIPPED,
        payload.location_id,
        _occurred(payload.shipment_date, published_at, "shipment_date"),
        refs,
        shipment=shipment,
        document_lines=lines,
    )


def _count(payload: schemas.ItemsCounted, published_at: datetime | None) -> Effect:
    refs = _refs(count_type=payload.count_type)
    movements, counts, lines = [], [], []
    for number, item in enumerate(payload.items, start=1):
        location = item.stock_location or payload.stock_location or MAIN
        variance = item.count - item.stock_on_hand
        movements.append(
            Movement(location, item.product_id, variance, Kind.COUNT_VARIANCE, number, 0, refs)
        )
        counts.append(
            CountObservation(location, item.product_id, item.count, item.stock_on_hand, number)
        )
        lines.append(
            DocumentLine(
                item.product_id,
                location,
                variance,
                counted=item.count,
                stock_on_hand=item.stock_on_hand,
            )
        )
    return Effect(
        DocumentType.COUNT,
        payload.location_id,
        _occurred(payload.completed_at, published_at, "completed_at"),
        refs,
        movements,
        counts,
        document_lines=lines,
    )
