"""Sales (`fulfillment_request.items_completed`, PRODUCT.md sections 4, 5 and 7) on both
backends: one `sale` of -1 at `main` per line, deduplicated by logical timestamp, and an ERP
document only with INVSYNC_ERP_SEND_SALES."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import outbox_message
from tests import factories as f

EXAMPLE = "/work/shared/newstore/examples/fulfillment_request__items_completed.json"


def accepted(client: TestClient, body: dict[str, Any]) -> int:
    answer = f.post(client, body)
    assert answer["status"] == "accepted", answer
    event_id: int = answer["event_id"]
    return event_id


def outbox(db: Database) -> list[dict[str, Any]]:
    with db.snapshot() as conn:
        rows = conn.execute(select(outbox_message).order_by(outbox_message.c.created_at)).all()
    return [json.loads(row.document) for row in rows]


@pytest.fixture
def selling_client(settings: Settings) -> Iterator[TestClient]:
    """A service with INVSYNC_ERP_SEND_SALES on."""
    with TestClient(create_app(settings.model_copy(update={"erp_send_sales": True}))) as client:
        yield client


class TestLedger:
    def test_each_line_is_one_unit_out_of_main_at_published_at(self, client: TestClient) -> None:
        body = f.sold("A", "A", "B", order_id="ORDER-1", logical_timestamp=42)
        event_id = accepted(client, body)

        movements = f.ledger(client)
        assert [(m["stock_location"], m["product_id"], m["quantity"]) for m in movements] == [
            ("main", "A", -1),
            ("main", "A", -1),
            ("main", "B", -1),
        ]
        for n, movement in enumerate(movements, start=1):
            assert movement["kind"] == "sale"
            assert movement["location_id"] == f.STORE
            assert movement["event_id"] == event_id
            assert movement["event_name"] == "fulfillment_request.items_completed"
            assert movement["line_number"] == n
            # The payload has no time of its own.
            assert movement["occurred_at"] == "2024-05-14T09:32:18.402000Z"
            assert movement["references"] == {
                "order_id": "ORDER-1",
                "service_level": "IN_STORE_HANDOVER",
                "logical_timestamp": 42,
            }
        assert {(p["product_id"], p["on_hand"]) for p in f.stock(client)} == {("A", -2), ("B", -1)}

    def test_the_composed_example_is_accepted(self, client: TestClient) -> None:
        with open(EXAMPLE, "rb") as example:
            body = example.read()
        answer = f.post(client, body)
        assert answer["status"] == "accepted", answer
        assert [m["product_id"] for m in f.ledger(client)] == ["100234-M", "100234-M", "204410-L"]
        event = f.event(client, answer["event_id"])
        assert event["payload_id"] == "9b1f4c7e-2d3a-4e8b-a6c5-1f0e9d8c7b6a"
        assert event["chunk_number"] is None  # a sale is never chunked
        assert event["location_id"] == "US-NYC-01"

    def test_line_external_identifiers_are_kept(self, client: TestClient) -> None:
        body = f.sold("A")
        body["payload"]["items"][0]["external_identifiers"] = {"upc": "012345678905"}
        accepted(client, body)
        (movement,) = f.ledger(client)
        assert movement["references"]["external_identifiers"] == {"upc": "012345678905"}

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"logical_timestamp": None}, "payload.logical_timestamp"),
            ({"logical_timestamp": -1}, "negative logical timestamp"),
            ({"logical_timestamp": 2**64}, "does not fit 64 bits"),
            ({"fulfillment_location_id": None}, "payload.fulfillment_location_id"),
        ],
    )
    def test_what_cannot_be_booked_is_quarantined(
        self, client: TestClient, change: dict[str, Any], reason: str
    ) -> None:
        body = f.sold("A")
        for name, value in change.items():
            if value is None:
                del body["payload"][name]
            else:
                body["payload"][name] = value
        answer = f.post(client, body)
        assert answer["status"] == "quarantined"
        assert reason in answer["detail"]
        assert f.ledger(client) == []
        # Kept, and the same body again is the same delivery.
        assert f.post(client, body)["event_id"] == answer["event_id"]

    def test_without_published_at_it_is_quarantined(self, client: TestClient) -> None:
        body = f.sold("A")
        del body["published_at"]
        answer = f.post(client, body)
        assert answer["status"] == "quarantined"
        assert "published_at" in answer["detail"]


class TestDedupe:
    def test_logical_timestamp_tells_events_of_one_request_apart(self, client: TestClient) -> None:
        first = f.sold("A", logical_timestamp=1)
        second = copy.deepcopy(first)
        second["payload"]["logical_timestamp"] = 2
        second["payload"]["items"] = [{"id": f.new_id(), "product_id": "B"}]

        accepted(client, first)
        accepted(client, second)
        assert f.post(client, first)["status"] == "duplicate"
        assert f.post(client, second)["status"] == "duplicate"
        assert sorted(m["product_id"] for m in f.ledger(client)) == ["A", "B"]

    def test_same_logical_timestamp_with_other_lines_is_quarantined(
        self, client: TestClient
    ) -> None:
        first = f.sold("A", logical_timestamp=7)
        other = copy.deepcopy(first)
        other["payload"]["items"].append({"id": f.new_id(), "product_id": "B"})
        holder = accepted(client, first)
        answer = f.post(client, other)
        assert answer["status"] == "quarantined"
        assert f"event {holder}" in answer["detail"]
        assert [m["product_id"] for m in f.ledger(client)] == ["A"]

    def test_a_chunk_number_does_not_tell_sales_apart(self, client: TestClient) -> None:
        body = f.sold("A", logical_timestamp=9)
        accepted(client, body)
        again = copy.deepcopy(body)
        again["payload"]["chunk_number"] = 2
        assert f.post(client, again)["status"] == "quarantined"
        assert len(f.ledger(client)) == 1


class TestErpDocuments:
    def test_off_by_default_ledger_rows_but_no_outbox_row(
        self, client: TestClient, db: Database
    ) -> None:
        accepted(client, f.sold("A", "B"))
        assert len(f.ledger(client)) == 2
        with db.snapshot() as conn:
            assert conn.execute(select(func.count()).select_from(outbox_message)).scalar() == 0
        # Other events still queue theirs.
        accepted(client, f.received(("A", 1)))
        assert [d["type"] for d in outbox(db)] == ["inventory.receipt"]

    def test_on_an_inventory_sale_document_per_event(
        self, selling_client: TestClient, db: Database
    ) -> None:
        body = f.sold("A", "A", order_id="ORDER-1", logical_timestamp=5)
        accepted(selling_client, body)
        (document,) = outbox(db)
        assert document["type"] == "inventory.sale"
        assert document["location_id"] == f.STORE
        assert document["occurred_at"] == "2024-05-14T09:32:18.402000Z"
        assert document["references"] == {
            "order_id": "ORDER-1",
            "service_level": "IN_STORE_HANDOVER",
            "logical_timestamp": 5,
        }
        assert document["source"]["event_name"] == "fulfillment_request.items_completed"
        assert document["lines"] == [
            {"product_id": "A", "stock_location": "main", "quantity_delta": -1},
            {"product_id": "A", "stock_location": "main", "quantity_delta": -1},
        ]

    def test_message_ids_follow_the_logical_timestamp(
        self, selling_client: TestClient, db: Database
    ) -> None:
        first = f.sold("A", logical_timestamp=1)
        second = copy.deepcopy(first)
        second["payload"]["logical_timestamp"] = 2
        accepted(selling_client, first)
        accepted(selling_client, second)
        assert f.post(selling_client, first)["status"] == "duplicate"
        ids = [d["id"] for d in outbox(db)]
        assert len(ids) == 2
        assert len(set(ids)) == 2
