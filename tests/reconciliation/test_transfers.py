"""`/v1/reconciliation/transfers` and its unmatched receipts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests import factories as f


def transfers(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    return pages(client, "/v1/reconciliation/transfers", **filters)


def unmatched(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    return pages(client, "/v1/reconciliation/transfers/unmatched", **filters)


def pages(client: TestClient, path: str, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, **filters}
    while True:
        response = client.get(path, params=params, headers=f.read_headers())
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


def ship(client: TestClient, *pairs: tuple[str, int], **payload: Any) -> str:
    body = f.asn(*pairs, **payload)
    assert f.post(client, body)["status"] == "accepted"
    asn_id: str = body["payload"]["id"]
    return asn_id


def receive(client: TestClient, *pairs: tuple[str, int], **payload: Any) -> None:
    payload.setdefault("fulfillment_location_id", "US-BOS-02")
    assert f.post(client, f.received(*pairs, **payload))["status"] == "accepted"


def lines_of(transfer: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        line["product_id"]: (line["shipped"], line["received"], line["difference"])
        for line in transfer["lines"]
    }


class TestTransferStatus:
    def test_nothing_received_is_in_transit(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2), ("B", 1), destination_location_id="US-BOS-02")
        [transfer] = transfers(client)
        assert transfer["asn_id"] == asn_id
        assert transfer["status"] == "in_transit"
        assert transfer["origin_location_id"] == f.STORE
        assert transfer["destination_location_id"] is None
        assert transfer["named_destination_location_id"] == "US-BOS-02"
        assert transfer["transfer_order_ref"] == "TO1"
        assert transfer["shipment_ref"] == "SHIP1"
        assert lines_of(transfer) == {"A": (2, 0, -2), "B": (1, 0, -1)}

    def test_exact_receipt_is_received(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2), ("B", 1))
        receive(client, ("A", 2), ("B", 1), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert lines_of(transfer) == {"A": (2, 2, 0), "B": (1, 1, 0)}

    def test_receipts_in_several_sessions_add_up(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 5))
        receive(client, ("A", 2), asn_id=asn_id)
        assert transfers(client)[0]["status"] == "partially_received"
        receive(client, ("A", 3), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert lines_of(transfer) == {"A": (5, 5, 0)}

    def test_short_receipt_is_partially_received(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2), ("B", 1))
        receive(client, ("A", 1), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "partially_received"
        assert lines_of(transfer) == {"A": (2, 1, -1), "B": (1, 0, -1)}

    def test_over_receipt_is_a_discrepancy(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2), ("B", 1))
        receive(client, ("A", 3), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "discrepancy"
        assert lines_of(transfer) == {"A": (2, 3, 1), "B": (1, 0, -1)}

    def test_unexpected_product_is_a_discrepancy(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2))
        receive(client, ("A", 2), ("Z", 1), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "discrepancy"
        assert lines_of(transfer) == {"A": (2, 2, 0), "Z": (0, 1, 1)}

    def test_chunks_of_an_asn_form_one_transfer(self, client: TestClient) -> None:
        asn_id = f.new_id()
        ship(client, ("A", 2), id=asn_id, chunk_number=1, total_chunks=2)
        ship(client, ("B", 1), ("A", 1), id=asn_id, chunk_number=2, total_chunks=2)
        receive(client, ("A", 3), ("B", 1), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert lines_of(transfer) == {"A": (3, 3, 0), "B": (1, 1, 0)}


class TestMatching:
    def test_receipt_before_its_asn_matches_once_the_asn_arrives(self, client: TestClient) -> None:
        asn_id = f.new_id()
        receive(client, ("A", 2), asn_id=asn_id)
        assert transfers(client) == []
        [waiting] = unmatched(client)
        assert waiting["asn_id"] == asn_id
        assert waiting["lines"] == [{"product_id": "A", "received": 2}]

        ship(client, ("A", 2), id=asn_id)
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert unmatched(client) == []

    def test_receipt_without_asn_id_matches_on_shipment_ref(self, client: TestClient) -> None:
        ship(client, ("A", 2), shipment_ref="IF1203593")
        receive(client, ("A", 2), shipment_ref="IF1203593")
        assert transfers(client)[0]["status"] == "received"

    def test_asn_id_wins_over_shipment_ref(self, client: TestClient) -> None:
        first = ship(client, ("A", 2), shipment_ref="S1")
        ship(client, ("A", 2), shipment_ref="S2")
        receive(client, ("A", 2), asn_id=first, shipment_ref="S2")
        by_id = {t["asn_id"]: t["status"] for t in transfers(client)}
        assert by_id[first] == "received"
        assert sorted(by_id.values()) == ["in_transit", "received"]

    def test_receipt_naming_an_unknown_asn_is_unmatched(self, client: TestClient) -> None:
        ship(client, ("A", 2), shipment_ref="S1")
        ghost = f.new_id()
        receive(client, ("A", 1), asn_id=ghost, shipment_ref="S-unknown")
        receive(client, ("B", 1))  # a blind receipt names nothing: not a transfer matter
        [item] = unmatched(client)
        assert item["asn_id"] == ghost
        assert item["shipment_ref"] == "S-unknown"
        assert item["location_id"] == "US-BOS-02"
        assert transfers(client)[0]["status"] == "in_transit"
        assert unmatched(client, asn_id="other") == []

    def test_tenants_never_match_each_other(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2))
        body = f.received(("A", 2), asn_id=asn_id)
        body["tenant"] = "other-tenant"
        assert f.post(client, body)["status"] == "accepted"
        assert transfers(client)[0]["status"] == "in_transit"
        assert [u["tenant"] for u in unmatched(client)] == ["other-tenant"]


class TestDestination:
    def test_the_receiving_store_is_the_destination_null_while_in_transit(
        self, client: TestClient
    ) -> None:
        asn_id = ship(client, ("A", 2))
        [transfer] = transfers(client)
        assert transfer["destination_location_id"] is None
        assert transfer["reason"] is None

        receive(client, ("A", 1), asn_id=asn_id, fulfillment_location_id="US-BOS-02")
        [transfer] = transfers(client)
        assert transfer["status"] == "partially_received"
        assert transfer["destination_location_id"] == "US-BOS-02"
        assert [t["asn_id"] for t in transfers(client, destination_location_id="US-BOS-02")] == [
            asn_id
        ]
        assert transfers(client, destination_location_id="US-SFO-03") == []

    def test_a_receipt_matched_by_shipment_ref_names_the_destination_too(
        self, client: TestClient
    ) -> None:
        ship(client, ("A", 2), shipment_ref="IF77")
        receive(client, ("A", 2), shipment_ref="IF77", fulfillment_location_id="US-SFO-03")
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert transfer["destination_location_id"] == "US-SFO-03"

    def test_received_where_the_asn_said_is_no_discrepancy(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2), destination_location_id="US-BOS-02")
        receive(client, ("A", 2), asn_id=asn_id, fulfillment_location_id="US-BOS-02")
        [transfer] = transfers(client)
        assert transfer["status"] == "received"
        assert transfer["named_destination_location_id"] == "US-BOS-02"
        assert transfer["reason"] is None

    def test_received_elsewhere_than_the_asn_said_is_a_discrepancy(
        self, client: TestClient
    ) -> None:
        asn_id = ship(client, ("A", 2), destination_location_id="US-BOS-02")
        receive(client, ("A", 2), asn_id=asn_id, fulfillment_location_id="US-SFO-03")
        [transfer] = transfers(client)
        assert transfer["status"] == "discrepancy"
        assert transfer["destination_location_id"] == "US-SFO-03"
        assert transfer["named_destination_location_id"] == "US-BOS-02"
        assert transfer["reason"] == "received at US-SFO-03, not at the ASN's destination US-BOS-02"
        assert lines_of(transfer) == {"A": (2, 2, 0)}
        assert [t["asn_id"] for t in transfers(client, status="discrepancy")] == [asn_id]

    def test_received_at_two_stores_is_a_discrepancy(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2))
        receive(client, ("A", 1), asn_id=asn_id, fulfillment_location_id="US-BOS-02")
        receive(client, ("A", 1), asn_id=asn_id, fulfillment_location_id="US-SFO-03")
        [transfer] = transfers(client)
        assert transfer["status"] == "discrepancy"
        assert transfer["reason"] == (
            "received at more than one store, among them US-BOS-02 and US-SFO-03"
        )

    def test_the_reason_names_over_and_unexpected_products(self, client: TestClient) -> None:
        asn_id = ship(client, ("A", 2))
        receive(client, ("A", 3), ("Z", 1), asn_id=asn_id)
        [transfer] = transfers(client)
        assert transfer["reason"] == "received more than shipped: A; received but not shipped: Z"


class TestFiltersAndPages:
    def test_filters(self, client: TestClient) -> None:
        a = ship(client, ("A", 1), origin_id="S1", shipment_date="2024-05-01T00:00:00Z")
        b = ship(client, ("A", 1), origin_id="S2", shipment_date="2024-05-03T00:00:00Z")
        receive(client, ("A", 1), asn_id=b)
        assert [t["asn_id"] for t in transfers(client, origin_location_id="S1")] == [a]
        assert [t["asn_id"] for t in transfers(client, status="received")] == [b]
        assert [t["asn_id"] for t in transfers(client, since="2024-05-02")] == [b]
        assert [t["asn_id"] for t in transfers(client, until="2024-05-02")] == [a]
        assert [t["asn_id"] for t in transfers(client, asn_id=a)] == [a]

    def test_pages_cover_every_transfer_once(self, client: TestClient) -> None:
        shipped = {ship(client, ("A", 1), ("B", 2)) for _ in range(5)}
        for asn_id in list(shipped)[:2]:
            receive(client, ("A", 1), asn_id=asn_id)
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = client.get(
                "/v1/reconciliation/transfers", params=params, headers=f.read_headers()
            ).json()
            assert len(page["items"]) <= 2
            for item in page["items"]:
                assert len(item["lines"]) == 2
            seen.extend(item["asn_id"] for item in page["items"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        assert sorted(seen) == sorted(shipped)
        partial = transfers(client, status="partially_received", limit=1)
        assert len(partial) == 2

    def test_bad_status_and_cursor_are_problems(self, client: TestClient) -> None:
        for params in ({"status": "lost"}, {"cursor": "nope"}, {"since": "yesterday"}):
            response = client.get(
                "/v1/reconciliation/transfers", params=params, headers=f.read_headers()
            )
            assert response.status_code in (400, 422)
            assert response.headers["content-type"] == "application/problem+json"
