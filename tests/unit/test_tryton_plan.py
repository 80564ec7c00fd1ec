"""What the tryton adapter books for a document, before it talks to Tryton: the moves a
document stands for and the shipments that carry them."""

from __future__ import annotations

from typing import Any

import pytest

from inventory_sync.erp_sync import tryton_plan
from inventory_sync.erp_sync.tryton_plan import Move
from inventory_sync.erp_sync.tryton_rpc import TrytonRefused


def document(kind: str, *lines: tuple[str, str, int], **references: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "references": references,
        "lines": [{"product_id": p, "stock_location": s, "quantity_delta": q} for p, s, q in lines],
    }


def plan(doc: dict[str, Any]) -> list[tuple[str, str, str, list[tuple[str, int]]]]:
    return [
        (b.model, b.source, b.target, [(m.product_id, m.quantity) for m in b.moves])
        for b in tryton_plan.bookings(tryton_plan.moves(doc))
    ]


class TestMoves:
    def test_receipts_come_from_the_supplier_or_from_transit_when_they_name_an_asn(self) -> None:
        assert tryton_plan.moves(document("inventory.receipt", ("A", "main", 3))) == [
            Move("A", 3, "supplier", "main")
        ]
        assert tryton_plan.moves(document("inventory.receipt", ("A", "main", 3), asn_id="X")) == [
            Move("A", 3, "transit", "main")
        ]

    def test_an_adjustment_between_stock_locations_is_one_move(self) -> None:
        both = document(
            "inventory.adjustment",
            ("A", "main", -2),
            ("A", "damaged", 2),
            ("B", "main", -1),
            ("B", "damaged", 1),
            origin_stock_location_name="main",
            destination_stock_location_name="damaged",
        )
        assert tryton_plan.moves(both) == [
            Move("A", 2, "main", "damaged"),
            Move("B", 1, "main", "damaged"),
        ]
        one_sided = document("inventory.adjustment", ("A", "damaged", -2), ("B", "damaged", 1))
        assert tryton_plan.moves(one_sided) == [
            Move("A", 2, "damaged", "lost_found"),
            Move("B", 1, "lost_found", "damaged"),
        ]

    def test_counts_book_their_difference_and_nothing_for_none(self) -> None:
        count = document("inventory.count", ("A", "main", -2), ("B", "main", 0), ("C", "main", 4))
        assert tryton_plan.moves(count) == [
            Move("A", 2, "main", "lost_found"),
            Move("C", 4, "lost_found", "main"),
        ]

    def test_an_asn_books_nothing_and_an_unknown_type_is_refused(self) -> None:
        assert tryton_plan.moves(document("inventory.transfer_shipped", ("A", "main", 0))) == []
        with pytest.raises(TrytonRefused, match=r"documents of type inventory\.stocktake"):
            tryton_plan.moves(document("inventory.stocktake", ("A", "main", 1)))


class TestShipments:
    def test_goods_from_a_party_arrive_in_storage_and_move_on_internally(self) -> None:
        ret = document("inventory.return", ("A", "damaged", 2), ("B", "main", 1))
        assert plan(ret) == [
            ("stock.shipment.out.return", "customer", "main", [("A", 2), ("B", 1)]),
            ("stock.shipment.internal", "main", "damaged", [("A", 2)]),
        ]

    def test_a_sale_leaves_from_storage_to_the_customer(self) -> None:
        assert plan(document("inventory.sale", ("A", "main", -1), ("B", "main", -1))) == [
            ("stock.shipment.out", "main", "customer", [("A", 1), ("B", 1)])
        ]

    def test_internal_moves_are_grouped_by_their_two_locations(self) -> None:
        count = document("inventory.count", ("A", "main", -2), ("B", "main", 1), ("C", "main", -1))
        assert plan(count) == [
            ("stock.shipment.internal", "main", "lost_found", [("A", 2), ("C", 1)]),
            ("stock.shipment.internal", "lost_found", "main", [("B", 1)]),
        ]
