"""What the tryton adapter books for a document, before it talks to Tryton (pure).

A document's lines are signed quantities at the store's stock locations. Each becomes a move
between that location and the counterpart its type names (supplier, transit, customer, lost and
found), or, for an adjustment from one stock location to another, between the two. Moves are
grouped into the shipments Tryton books them with, because a move out of storage can only be
done through a shipment's assignment, and only shipments keep an external reference:

| moves | shipment |
|---|---|
| supplier -> storage | `stock.shipment.in` |
| customer -> storage | `stock.shipment.out.return` |
| storage -> customer | `stock.shipment.out` |
| between storage, transit and lost and found | `stock.shipment.internal` |

A supplier's or customer's goods arrive at (or leave from) the warehouse's storage location;
one bound for another stock location is moved on by an internal shipment in the same document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from inventory_sync.erp_sync.tryton_rpc import TrytonRefused

MAIN = "main"
INTERNAL = "stock.shipment.internal"
IN = "stock.shipment.in"
OUT = "stock.shipment.out"
RETURN = "stock.shipment.out.return"

# Where a document type's stock comes from (quantity > 0) or goes to (quantity < 0).
SUPPLIER, CUSTOMER, TRANSIT, LOST_FOUND = "supplier", "customer", "transit", "lost_found"
COUNTERPARTS = {
    "inventory.receipt": SUPPLIER,  # TRANSIT when the receipt names an ASN
    "inventory.transfer_out": TRANSIT,
    "inventory.sale": CUSTOMER,
    "inventory.return": CUSTOMER,
    "inventory.count": LOST_FOUND,
    "inventory.adjustment": LOST_FOUND,  # or the other stock location of a move
}
NOTHING_TO_BOOK = frozenset({"inventory.transfer_shipped"})


@dataclass(frozen=True)
class Move:
    product_id: str
    quantity: int
    source: str  # a NewStore stock location, or one of the counterparts
    target: str


@dataclass
class Booking:
    """One shipment to create (or find): its model, where from and where to, its moves."""

    model: str
    source: str
    target: str
    moves: list[Move] = field(default_factory=list)


def moves(document: dict[str, Any]) -> list[Move]:
    """The moves a document stands for, each with a positive quantity."""
    kind = document["type"]
    if kind in NOTHING_TO_BOOK:
        return []
    if kind not in COUNTERPARTS:
        raise TrytonRefused(f"no Tryton booking for documents of type {kind}")
    counterpart = COUNTERPARTS[kind]
    if kind == "inventory.receipt" and document.get("references", {}).get("asn_id"):
        counterpart = TRANSIT  # goods shipped from another store: its transit balance
    lines = [line for line in document["lines"] if line["quantity_delta"]]
    refs = document.get("references", {})
    paired = kind == "inventory.adjustment" and bool(
        refs.get("origin_stock_location_name") and refs.get("destination_stock_location_name")
    )
    result: list[Move] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        delta = int(line["quantity_delta"])
        after = lines[i + 1] if i + 1 < len(lines) else None
        if (
            paired
            and after is not None
            and delta < 0
            and after["product_id"] == line["product_id"]
            and int(after["quantity_delta"]) == -delta
        ):
            # One adjustment line: out of its origin, into its destination.
            source, target = line["stock_location"], after["stock_location"]
            if source != target:
                result.append(Move(line["product_id"], -delta, source, target))
            i += 2
            continue
        where = line["stock_location"]
        if delta > 0:
            result.append(Move(line["product_id"], delta, counterpart, where))
        else:
            result.append(Move(line["product_id"], -delta, where, counterpart))
        i += 1
    return result


def bookings(planned: Iterable[Move]) -> list[Booking]:
    """The shipments that book `planned`: one per model and pair of locations, in an order
    that brings goods into a stock location before moving them on."""
    grouped: dict[tuple[str, str, str], Booking] = {}

    def add(model: str, move: Move) -> None:
        key = (model, move.source, move.target)
        grouped.setdefault(key, Booking(model, move.source, move.target)).moves.append(move)

    for move in planned:
        if move.source in (SUPPLIER, CUSTOMER):
            model = IN if move.source == SUPPLIER else RETURN
            add(model, Move(move.product_id, move.quantity, move.source, MAIN))
            if move.target != MAIN:
                add(INTERNAL, Move(move.product_id, move.quantity, MAIN, move.target))
        elif move.target == CUSTOMER:
            if move.source != MAIN:
                add(INTERNAL, Move(move.product_id, move.quantity, move.source, MAIN))
            add(OUT, Move(move.product_id, move.quantity, MAIN, CUSTOMER))
        else:
            add(INTERNAL, move)
    order = {IN: 0, RETURN: 0, INTERNAL: 1, OUT: 2}
    return sorted(grouped.values(), key=lambda b: order[b.model])
