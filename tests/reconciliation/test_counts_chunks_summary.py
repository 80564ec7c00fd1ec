"""`/v1/reconciliation/counts`, `/chunks` and the summary."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests import factories as f
from tests.reconciliation.test_transfers import pages, receive, ship


def counts(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    return pages(client, "/v1/reconciliation/counts", **filters)


def chunk_sets(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    return pages(client, "/v1/reconciliation/chunks", **filters)


def summary(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/reconciliation", params=params, headers=f.read_headers())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def count(client: TestClient, at: str, *triples: tuple[str, int, int]) -> None:
    assert f.post(client, f.counted(*triples, completed_at=at))["status"] == "accepted"


class TestCounts:
    def test_first_count_is_not_anchored(self, client: TestClient) -> None:
        f.post(client, f.received(("A", 5)))
        count(client, "2024-05-20T10:00:00Z", ("A", 4, 6))
        [line] = counts(client)
        assert line["counted"] == 4
        assert line["stock_on_hand"] == 6
        assert line["variance"] == -2
        assert line["expected"] is None
        assert line["drift"] is None
        assert line["location_id"] == f.STORE
        assert line["product_id"] == "A"
        assert line["counted_at"] == "2024-05-20T10:00:00Z"

    def test_earlier_count_anchors_expected_and_drift(self, client: TestClient) -> None:
        count(client, "2024-05-20T10:00:00Z", ("A", 10, 10))
        f.post(client, f.received(("A", 3), processed_at="2024-05-21T09:00:00Z"))
        f.post(client, f.handover(("A", 1), processed_at="2024-05-21T12:00:00Z"))
        # NewStore saw one more unit leave than we did: one event never reached us.
        count(client, "2024-05-22T10:00:00Z", ("A", 11, 11))
        # Happened after the second count: not part of its expected position.
        f.post(client, f.received(("A", 50), processed_at="2024-05-23T09:00:00Z"))
        first, second = sorted(counts(client), key=lambda line: line["counted_at"])
        assert first["expected"] is None
        assert second["expected"] == 12
        assert second["drift"] == -1  # stock_on_hand - expected: the unit we never saw leave
        assert second["variance"] == 0
        assert [line["count_id"] for line in counts(client, drifted="true")] == [second["count_id"]]
        assert summary(client)["counts"]["drifted_lines"] == 1

    def test_late_movement_before_the_count_is_included(self, client: TestClient) -> None:
        count(client, "2024-05-22T10:00:00Z", ("A", 7, 7))
        count(client, "2024-05-20T10:00:00Z", ("A", 5, 5))  # an earlier count, arriving late
        f.post(client, f.received(("A", 2), processed_at="2024-05-21T09:00:00Z"))
        later = next(c for c in counts(client) if c["counted_at"].startswith("2024-05-22"))
        assert later["expected"] == 7
        assert later["drift"] == 0
        assert counts(client, drifted="true") == []
        assert len(counts(client, drifted="false")) == 2

    def test_anchor_is_per_product_and_stock_location(self, client: TestClient) -> None:
        count(client, "2024-05-20T10:00:00Z", ("A", 4, 4))
        count(client, "2024-05-22T10:00:00Z", ("A", 4, 4), ("B", 1, 1))
        by_product = {c["product_id"]: c["expected"] for c in counts(client, since="2024-05-21")}
        assert by_product == {"A": 4, "B": None}

    def test_stock_is_unchanged_by_reconciliation(self, client: TestClient) -> None:
        count(client, "2024-05-20T10:00:00Z", ("A", 4, 4))
        f.post(client, f.received(("A", 2), processed_at="2024-05-21T09:00:00Z"))
        f.post(client, f.received(("A", 9), processed_at="2024-05-19T09:00:00Z"))
        [position] = f.stock(client, product_id="A")
        assert position["on_hand"] == 6
        assert position["anchored"] is True


class TestChunks:
    def test_missing_chunks_are_listed_until_they_arrive(self, client: TestClient) -> None:
        payload_id = f.new_id()
        for number in (1, 3):
            body = f.received(("A", 1), id=payload_id, chunk_number=number, total_chunks=4)
            assert f.post(client, body)["status"] == "accepted"
        [item] = chunk_sets(client)
        assert item["event_name"] == "inventory_transaction.items_received"
        assert item["payload_id"] == payload_id
        assert item["total_chunks"] == 4
        assert item["received_chunks"] == 2
        assert item["missing_chunks"] == [2, 4]
        assert item["quarantined_chunks"] == []
        assert summary(client)["chunks"]["incomplete_sets"] == 1

        for number in (2, 4):
            body = f.received(("A", 1), id=payload_id, chunk_number=number, total_chunks=4)
            f.post(client, body)
        assert chunk_sets(client) == []
        assert summary(client)["chunks"]["incomplete_sets"] == 0

    def test_quarantined_chunk_is_still_missing(self, client: TestClient) -> None:
        payload_id = f.new_id()
        f.post(client, f.received(("A", 1), id=payload_id, chunk_number=1, total_chunks=2))
        bad = f.received(("A", -1), id=payload_id, chunk_number=2, total_chunks=2)
        assert f.post(client, bad)["status"] == "quarantined"
        [item] = chunk_sets(client)
        assert item["missing_chunks"] == [2]
        assert item["quarantined_chunks"] == [2]

    def test_sales_are_never_chunk_sets(self, client: TestClient) -> None:
        sale = f.sold("A", total_chunks=2)
        assert f.post(client, sale)["status"] == "accepted"
        del sale["published_at"]  # a sale has no time of its own without it
        sale["payload"]["logical_timestamp"] += 1
        assert f.post(client, sale)["status"] == "quarantined"
        assert chunk_sets(client) == []
        assert summary(client)["chunks"]["incomplete_sets"] == 0

    def test_complete_and_single_chunk_transactions_are_not_listed(
        self, client: TestClient
    ) -> None:
        f.post(client, f.received(("A", 1)))
        ship(client, ("A", 1))
        assert chunk_sets(client) == []

    def test_filters_and_pages(self, client: TestClient) -> None:
        for _ in range(3):
            f.post(client, f.received(("A", 1), chunk_number=1, total_chunks=2))
        f.post(client, f.adjustment(("A", 1), chunk_number=2, total_chunks=2))
        assert len(chunk_sets(client, limit=1)) == 4
        adjustments = chunk_sets(client, event_name="inventory_transaction.adjustment_created")
        assert [item["missing_chunks"] for item in adjustments] == [[1]]
        assert chunk_sets(client, tenant="nobody") == []


class TestSummary:
    def test_summary_of_everything(self, client: TestClient) -> None:
        ship(client, ("A", 1))
        done = ship(client, ("A", 1))
        receive(client, ("A", 1), asn_id=done)
        ghost = f.new_id()
        receive(client, ("A", 1), asn_id=ghost)
        answer = summary(client)
        assert answer["transfers"] == {
            "in_transit": 1,
            "partially_received": 0,
            "received": 1,
            "discrepancy": 0,
            "total": 2,
        }
        assert answer["unmatched_receipts"] == 1
        assert answer["unmatched_receipt_asn_ids"] == [ghost]
        sync = answer["sync"]
        assert sync["pending"] == 4
        assert sync["delivered"] == 0
        assert sync["dead"] == 0
        assert sync["oldest_pending_age_seconds"] >= 0
        assert summary(client, tenant="nobody")["transfers"]["total"] == 0

    def test_unmatched_asn_ids_are_the_first_few_once_each(self, client: TestClient) -> None:
        ghosts = [f.new_id() for _ in range(7)]
        for ghost in ghosts:
            receive(client, ("A", 1), asn_id=ghost)
        receive(client, ("A", 1), asn_id=ghosts[0])
        receive(client, ("A", 1), shipment_ref="S-unknown")  # no ASN id to name
        answer = summary(client)
        assert answer["unmatched_receipts"] == 9
        assert answer["unmatched_receipt_asn_ids"] == ghosts[:5]
        ship(client, ("A", 1), id=ghosts[0])
        assert summary(client)["unmatched_receipt_asn_ids"] == ghosts[1:6]

    def test_empty_database(self, client: TestClient) -> None:
        answer = summary(client)
        assert answer["transfers"]["total"] == 0
        assert answer["sync"]["oldest_pending_age_seconds"] is None
