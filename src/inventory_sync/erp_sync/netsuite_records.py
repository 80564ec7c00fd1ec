"""What the netsuite adapter books for a document, before it talks to NetSuite (pure).

Every document that changes stock becomes one NetSuite inventory adjustment
(`inventoryAdjustment`): a line per product and NetSuite location, adjusted by NewStore's
`quantity_delta`. NetSuite's other stock records were weighed and left out:

- an inventory transfer moves stock between two NetSuite locations in one record, but NewStore
  reports the two ends of a store-to-store transfer as separate events, far apart in time (the
  destination is not even known when the goods leave), so each end is an adjustment of its own;
- an item receipt is made from a purchase order, and a NewStore receipt names none;
- sales are booked by NetSuite's own order flow (item fulfilments); with
  `INVSYNC_ERP_SEND_SALES` a sale is an adjustment like the rest.

One record per document keeps delivery idempotent in one call: the record's external id is the
message id, and it is upserted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from inventory_sync.erp_sync.mapping import Mapping

INVENTORY_ADJUSTMENT = "inventoryAdjustment"
MAIN = "main"
MEMO_CHARS = 999


@dataclass(frozen=True)
class Books:
    """What every adjustment books against (internal ids in NetSuite)."""

    account: str
    subsidiary: str | None = None


@dataclass(frozen=True)
class Record:
    type: str
    body: dict[str, Any]


def location(mapping: Mapping, location_id: str, stock_location: str) -> str:
    """The NetSuite location of a store's stock location: `main` is the store's own."""
    if stock_location == MAIN:
        return mapping.location(location_id)
    return mapping.stock_location(location_id, stock_location)


def record(document: dict[str, Any], mapping: Mapping, books: Books) -> Record | None:
    """The record `document` books, or None when it moves no stock (an ASN, a count without
    a difference)."""
    totals: defaultdict[tuple[str, str], int] = defaultdict(int)
    for line in document["lines"]:
        place = location(mapping, document["location_id"], line["stock_location"])
        totals[mapping.product(line["product_id"]), place] += int(line["quantity_delta"])
    items = [
        {"item": {"id": item}, "location": {"id": place}, "adjustQtyBy": quantity}
        for (item, place), quantity in totals.items()
        if quantity != 0
    ]
    if not items:
        return None
    source = document["source"]
    memo = f"NewStore {document['type']} {source['event_id']}"
    if (source.get("total_chunks") or 1) > 1:
        memo += f" ({source['chunk_number']}/{source['total_chunks']})"
    body: dict[str, Any] = {
        "tranDate": document["occurred_at"][:10],
        "memo": memo[:MEMO_CHARS],
        "account": {"id": books.account},
        "inventory": {"items": items},
    }
    if books.subsidiary is not None:
        body["subsidiary"] = {"id": books.subsidiary}
    return Record(INVENTORY_ADJUSTMENT, body)
