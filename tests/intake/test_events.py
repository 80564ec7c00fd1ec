"""Each handled event type turns into exactly the movements of PRODUCT.md section 5,
and into the ERP document of section 7, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import count_observation, outbox_message, shipment_line
from tests import factories as f


def moves(client: TestClient, **filters: Any) -> list[tuple[str, str, int, str]]:
    """The ledger as (stock_location, product_id, quantity, kind), in recording order."""
    return [
        (m["stock_location"], m["product_id"], m["quantity"], m["kind"])
        for m in f.ledger(client, **filters)
    ]


def outbox_document(db: Database, event_id: int) -> dict[str, Any]:
    with db.snapshot() as conn:
        row = conn.execute(
            select(outbox_message).where(outbox_message.c.event_id == event_id)
        ).one()
    document: dict[str, Any] = json.loads(row.document)
    assert row.id == document["id"]
    assert row.type == document["type"]
    assert row.status == "pending"
    return document


def accepted(client: TestClient, body: dict[str, Any]) -> int:
    answer = f.post(client, body)
    assert answer["status"] == "accepted", answer
    event_id: int = answer["event_id"]
    return event_id


class TestReceipt:
    def test_each_line_is_plus_quantity_at_main_with_references(self, client: TestClient) -> None:
        body = f.received(
            ("A", 6),
            ("B", 4),
            asn_id="ASN-1",
            order_ref="TO055120",
            shipment_ref="IF104233",
        )
        body["payload"]["items"][0]["external_identifiers"] = {"upc": "012345678905"}
        event_id = accepted(client, body)

        movements = f.ledger(client)
        assert [(m["stock_location"], m["product_id"], m["quantity"]) for m in movements] == [
            ("main", "A", 6),
            ("main", "B", 4),
        ]
        first, second = movements
        assert first["kind"] == "receipt"
        assert first["location_id"] == f.STORE
        assert first["tenant"] == f.TENANT
        assert first["event_id"] == event_id
        assert first["event_name"] == "inventory_transaction.items_received"
        assert [first["line_number"], second["line_number"]] == [1, 2]
        assert first["occurred_at"] == "2024-05-14T09:31:55.117000Z"
        assert first["references"] == {
            "asn_id": "ASN-1",
            "order_ref": "TO055120",
            "shipment_ref": "IF104233",
            "external_identifiers": {"upc": "012345678905"},
        }
        assert second["references"] == {
            "asn_id": "ASN-1",
            "order_ref": "TO055120",
            "shipment_ref": "IF104233",
        }

    def test_fulfillment_node_id_is_an_alias_for_the_location(self, client: TestClient) -> None:
        body = f.received(("A", 1))
        del body["payload"]["fulfillment_location_id"]
        body["payload"]["fulfillment_node_id"] = "US-BOS-02"
        accepted(client, body)
        [movement] = f.ledger(client)
        assert movement["location_id"] == "US-BOS-02"


class TestAdjustment:
    def test_move_debits_origin_and_credits_destination(self, client: TestClient) -> None:
        accepted(client, f.adjustment(("A", 3), ("B", 1)))
        assert moves(client) == [
            ("main", "A", -3, "adjustment"),
            ("damaged", "A", 3, "adjustment"),
            ("main", "B", -1, "adjustment"),
            ("damaged", "B", 1, "adjustment"),
        ]
        references = f.ledger(client)[0]["references"]
        assert references["adjustment_type"] == "Damage out"
        assert references["adjustment_reason"] == "Damaged"

    def test_origin_only_is_a_single_debit(self, client: TestClient) -> None:
        accepted(client, f.adjustment(("A", 2), destination_stock_location_name=None))
        assert moves(client) == [("main", "A", -2, "adjustment")]

    def test_destination_only_is_a_single_credit(self, client: TestClient) -> None:
        body = f.adjustment(("A", 5), destination_stock_location_name="main")
        del body["payload"]["origin_stock_location_name"]
        accepted(client, body)
        assert moves(client) == [("main", "A", 5, "adjustment")]

    @pytest.mark.parametrize("missing", [None, "", "absent"])
    def test_neither_location_is_quarantined(self, client: TestClient, missing: Any) -> None:
        body = f.adjustment(("A", 5))
        for field in ("origin_stock_location_name", "destination_stock_location_name"):
            if missing == "absent":
                del body["payload"][field]
            else:
                body["payload"][field] = missing
        answer = f.post(client, body)
        assert answer["status"] == "quarantined"
        assert "origin_stock_location_name" in answer["detail"]
        assert "destination_stock_location_name" in answer["detail"]
        assert f.ledger(client) == []

    @pytest.mark.parametrize("empty", [None, "", "absent"])
    def test_null_absent_and_empty_destination_all_mean_none(
        self, client: TestClient, empty: Any
    ) -> None:
        body = f.adjustment(("A", 4))
        if empty == "absent":
            del body["payload"]["destination_stock_location_name"]
        else:
            body["payload"]["destination_stock_location_name"] = empty
        accepted(client, body)
        assert moves(client) == [("main", "A", -4, "adjustment")]

    def test_fulfillment_location_id_is_an_alias(self, client: TestClient) -> None:
        body = f.adjustment(("A", 1))
        del body["payload"]["fulfillment_node_id"]
        body["payload"]["fulfillment_location_id"] = "US-BOS-02"
        accepted(client, body)
        assert {m["location_id"] for m in f.ledger(client)} == {"US-BOS-02"}


class TestHandover:
    def test_each_line_is_minus_quantity_at_main(self, client: TestClient) -> None:
        accepted(client, f.handover(("A", 2), ("B", 1)))
        assert moves(client) == [
            ("main", "A", -2, "transfer_out"),
            ("main", "B", -1, "transfer_out"),
        ]
        references = f.ledger(client)[0]["references"]
        assert references == {"transfer_order_ref": "TO1", "shipment_ref": "SHIP1"}

    @pytest.mark.parametrize("quantity", ["absent", None])
    def test_a_line_without_quantity_is_one_unit(self, client: TestClient, quantity: Any) -> None:
        body = f.handover(("A", 9))
        if quantity == "absent":
            del body["payload"]["items"][0]["quantity"]
        else:
            body["payload"]["items"][0]["quantity"] = None
        accepted(client, body)
        assert moves(client) == [("main", "A", -1, "transfer_out")]

    @pytest.mark.parametrize(
        "alias", ["fulfillment_location_id", "fulfillment_node_id", "origin_id"]
    )
    def test_location_aliases(self, client: TestClient, alias: str) -> None:
        body = f.handover(("A", 1))
        del body["payload"]["fulfillment_location_id"]
        body["payload"][alias] = "US-LA-07"
        accepted(client, body)
        assert [m["location_id"] for m in f.ledger(client)] == ["US-LA-07"]

    def test_without_any_location_is_quarantined(self, client: TestClient) -> None:
        body = f.handover(("A", 1))
        del body["payload"]["fulfillment_location_id"]
        answer = f.post(client, body)
        assert answer["status"] == "quarantined"
        assert "fulfillment_location_id" in answer["detail"]


class TestAsnCreated:
    def test_no_movement_but_a_shipment_and_an_erp_document(
        self, client: TestClient, db: Database
    ) -> None:
        body = f.asn(("A", 2), ("B", 1), destination_location_id="US-BOS-02")
        event_id = accepted(client, body)
        assert f.ledger(client) == []

        with db.snapshot() as conn:
            rows = conn.execute(select(shipment_line).order_by(shipment_line.c.line_number)).all()
        assert [(r.product_id, r.quantity, r.line_number) for r in rows] == [
            ("A", 2, 1),
            ("B", 1, 2),
        ]
        assert {r.asn_id for r in rows} == {body["payload"]["id"]}
        assert {r.origin_location_id for r in rows} == {f.STORE}
        assert {r.destination_location_id for r in rows} == {"US-BOS-02"}
        assert {r.shipment_ref for r in rows} == {"SHIP1"}

        document = outbox_document(db, event_id)
        assert document["type"] == "inventory.transfer_shipped"
        assert document["location_id"] == f.STORE
        assert document["occurred_at"] == "2024-05-14T15:02:11Z"
        assert document["references"]["asn_id"] == body["payload"]["id"]
        assert [
            (line["product_id"], line["quantity_delta"], line["quantity_shipped"])
            for line in document["lines"]
        ] == [("A", 0, 2), ("B", 0, 1)]


class TestCount:
    def test_variance_is_count_minus_stock_on_hand_and_the_count_is_kept(
        self, client: TestClient, db: Database
    ) -> None:
        body = f.counted(("A", 6, 7), ("B", 1, 0), ("C", 3, 3))
        event_id = accepted(client, body)
        assert moves(client) == [
            ("main", "A", -1, "count_variance"),
            ("main", "B", 1, "count_variance"),
            ("main", "C", 0, "count_variance"),
        ]
        assert f.ledger(client)[0]["references"] == {"count_type": "cycle_count"}
        with db.snapshot() as conn:
            rows = conn.execute(
                select(count_observation).order_by(count_observation.c.line_number)
            ).all()
        assert [(r.product_id, r.counted, r.stock_on_hand) for r in rows] == [
            ("A", 6, 7),
            ("B", 1, 0),
            ("C", 3, 3),
        ]
        assert {r.count_id for r in rows} == {body["payload"]["id"]}
        assert {r.event_id for r in rows} == {event_id}

        positions = {p["product_id"]: p for p in f.stock(client)}
        assert positions["A"]["on_hand"] == 6
        assert positions["A"]["anchored"] is True
        assert positions["A"]["last_count"] == {
            "counted": 6,
            "stock_on_hand": 7,
            "counted_at": "2024-05-20T16:05:21.181000Z",
        }

    def test_payload_stock_location_is_honoured(self, client: TestClient) -> None:
        accepted(client, f.counted(("A", 2, 5), stock_location="damaged"))
        assert moves(client) == [("damaged", "A", -3, "count_variance")]
        [position] = f.stock(client)
        assert (position["stock_location"], position["on_hand"]) == ("damaged", 2)

    def test_negative_stock_on_hand_is_allowed(self, client: TestClient) -> None:
        accepted(client, f.counted(("A", 0, -2)))
        assert moves(client) == [("main", "A", 2, "count_variance")]

    def test_negative_count_is_quarantined(self, client: TestClient) -> None:
        answer = f.post(client, f.counted(("A", -1, 0)))
        assert answer["status"] == "quarantined"
        assert "payload.items.0.count" in answer["detail"]


class TestReturn:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [(2, "damaged"), ("2", "damaged"), (1, "main"), ("7", "main"), (None, "main")],
    )
    def test_stock_location_comes_from_the_condition_code(
        self, client: TestClient, code: Any, expected: str
    ) -> None:
        line: dict[str, Any] = {"product_id": "A", "quantity": 2, "return_reason": "Too large"}
        if code is not None:
            line["condition_code"] = code
        accepted(client, f.returned(line))
        [movement] = f.ledger(client)
        assert (movement["stock_location"], movement["quantity"], movement["kind"]) == (
            expected,
            2,
            "return",
        )
        assert movement["references"]["return_reason"] == "Too large"
        assert movement["references"]["order_id"]

    def test_lines_are_mapped_one_by_one(self, client: TestClient) -> None:
        accepted(
            client,
            f.returned(
                {"product_id": "A", "quantity": 1, "condition_code": 1},
                {"product_id": "B", "quantity": 3, "condition_code": 2},
            ),
        )
        assert moves(client) == [("main", "A", 1, "return"), ("damaged", "B", 3, "return")]


class TestOccurredAt:
    @pytest.mark.parametrize(
        ("factory", "field"),
        [
            (f.received, "processed_at"),
            (f.adjustment, "processed_at"),
            (f.handover, "processed_at"),
            (f.counted, "completed_at"),
        ],
    )
    def test_named_field_else_published_at(
        self, client: TestClient, factory: Any, field: str
    ) -> None:
        named = factory(("A", 1, 0) if factory is f.counted else ("A", 1))
        named["payload"][field] = "2024-01-02T03:04:05+02:00"
        fallback = factory(("B", 1, 0) if factory is f.counted else ("B", 1))
        del fallback["payload"][field]
        fallback["published_at"] = "2024-02-03T04:05:06.5Z"
        accepted(client, named)
        accepted(client, fallback)
        when = {m["product_id"]: m["occurred_at"] for m in f.ledger(client)}
        assert when["A"] == "2024-01-02T01:04:05Z"
        assert when["B"] == "2024-02-03T04:05:06.500000Z"

    def test_return_and_asn_fall_back_too(self, client: TestClient, db: Database) -> None:
        body = f.returned({"product_id": "A", "quantity": 1})
        del body["payload"]["returned_at"]
        accepted(client, body)
        assert f.ledger(client)[0]["occurred_at"] == "2024-05-14T09:32:18.402000Z"
        shipped = f.asn(("A", 1))
        del shipped["payload"]["shipment_date"]
        event_id = accepted(client, shipped)
        assert outbox_document(db, event_id)["occurred_at"] == "2024-05-14T09:32:18.402000Z"

    def test_no_time_at_all_is_quarantined(self, client: TestClient) -> None:
        body = f.received(("A", 1))
        del body["payload"]["processed_at"]
        del body["published_at"]
        answer = f.post(client, body)
        assert answer["status"] == "quarantined"
        assert "processed_at" in answer["detail"]


class TestErpDocument:
    def test_receipt_document_has_the_shape_of_section_7(
        self, client: TestClient, db: Database
    ) -> None:
        body = f.received(("A", 6), asn_id="ASN-1", order_ref="O-1", chunk_number=2, total_chunks=3)
        body["payload"]["items"][0]["external_identifiers"] = {"sku": "A-SKU"}
        event_id = accepted(client, body)
        document = outbox_document(db, event_id)
        assert document == {
            "id": document["id"],
            "type": "inventory.receipt",
            "tenant": f.TENANT,
            "location_id": f.STORE,
            "occurred_at": "2024-05-14T09:31:55.117000Z",
            "source": {
                "event_name": "inventory_transaction.items_received",
                "event_id": body["payload"]["id"],
                "chunk_number": 2,
                "total_chunks": 3,
                "published_at": "2024-05-14T09:32:18.402000Z",
            },
            "references": {"asn_id": "ASN-1", "order_ref": "O-1"},
            "lines": [
                {
                    "product_id": "A",
                    "stock_location": "main",
                    "quantity_delta": 6,
                    "external_identifiers": {"sku": "A-SKU"},
                }
            ],
        }

    @pytest.mark.parametrize(
        ("factory", "line", "kind"),
        [
            (f.adjustment, ("A", 2), "inventory.adjustment"),
            (f.handover, ("A", 2), "inventory.transfer_out"),
            (f.counted, ("A", 5, 7), "inventory.count"),
        ],
    )
    def test_document_lines_match_the_movements(
        self, client: TestClient, db: Database, factory: Any, line: Any, kind: str
    ) -> None:
        event_id = accepted(client, factory(line))
        document = outbox_document(db, event_id)
        assert document["type"] == kind
        assert [(li["stock_location"], li["quantity_delta"]) for li in document["lines"]] == [
            (m["stock_location"], m["quantity"]) for m in f.ledger(client)
        ]
        if kind == "inventory.count":
            assert document["lines"][0]["counted"] == 5
            assert document["lines"][0]["stock_on_hand"] == 7

    def test_return_document(self, client: TestClient, db: Database) -> None:
        event_id = accepted(
            client, f.returned({"product_id": "A", "quantity": 1, "condition_code": 2})
        )
        document = outbox_document(db, event_id)
        assert document["type"] == "inventory.return"
        assert document["lines"] == [
            {"product_id": "A", "stock_location": "damaged", "quantity_delta": 1}
        ]

    def test_id_is_stable_for_the_same_key_and_distinct_otherwise(
        self, client: TestClient, db: Database, settings: Settings, tmp_path: Path
    ) -> None:
        body = f.received(("A", 1), chunk_number=1, total_chunks=2)
        first = accepted(client, body)
        document = outbox_document(db, first)
        assert f.post(client, body)["status"] == "duplicate"
        with db.snapshot() as conn:
            assert conn.execute(select(outbox_message.c.id)).scalars().all() == [document["id"]]

        second_chunk = json.loads(json.dumps(body))
        second_chunk["payload"]["chunk_number"] = 2
        other = outbox_document(db, accepted(client, second_chunk))
        assert other["id"] != document["id"]

        # Derived from the dedupe key, not from storage: another database gives the same id.
        elsewhere = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/x.db"})
        with TestClient(create_app(elsewhere)) as other_client:
            event_id = accepted(other_client, body)
        other_db = open_database(elsewhere.database_url)
        try:
            assert outbox_document(other_db, event_id)["id"] == document["id"]
        finally:
            other_db.dispose()
