"""`/v1/reconciliation/completeness`: per store, the signs that events are being lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from inventory_sync.clock import utcnow
from inventory_sync.storage.database import Database
from inventory_sync.views.reconciliation import completeness
from tests import factories as f
from tests.reconciliation.test_transfers import pages

FIELDS = {
    "tenant",
    "location_id",
    "last_counted_at",
    "counted_lines",
    "lines_with_drift",
    "drift_units",
    "stale_incomplete_chunk_sets",
    "quarantined_events",
    "score",
}


def stores(client: TestClient, **filters: Any) -> dict[str, dict[str, Any]]:
    items = pages(client, "/v1/reconciliation/completeness", **filters)
    assert all(set(item) == FIELDS for item in items)
    return {item["location_id"]: item for item in items}


def count(client: TestClient, store: str, at: str, *triples: tuple[str, int, int]) -> None:
    body = f.counted(*triples, completed_at=at, fulfillment_location_id=store)
    assert f.post(client, body)["status"] == "accepted"


def counted_store(client: TestClient, store: str) -> None:
    """Two counts of three products; NewStore booked 2 more of B and 1 fewer of C than we saw."""
    count(client, store, "2024-05-20T10:00:00Z", ("A", 5, 5), ("B", 5, 5), ("C", 5, 5))
    f.post(client, f.received(("A", 1), fulfillment_location_id=store, processed_at="2024-05-21"))
    count(client, store, "2024-05-22T10:00:00Z", ("A", 6, 6), ("B", 7, 7), ("C", 4, 4))


def test_the_figures_of_a_store(client: TestClient) -> None:
    counted_store(client, "US-NYC-01")
    [item] = stores(client, since="2024-01-01").values()
    assert item == {
        "tenant": f.TENANT,
        "location_id": "US-NYC-01",
        "last_counted_at": "2024-05-22T10:00:00Z",
        "counted_lines": 3,  # the first count's lines anchor nothing
        "lines_with_drift": 2,
        "drift_units": 3,
        "stale_incomplete_chunk_sets": 0,
        "quarantined_events": 0,
        "score": 1 / 3,
    }


def test_every_event_delivered_scores_one(client: TestClient) -> None:
    count(client, "US-NYC-01", "2024-05-20T10:00:00Z", ("A", 5, 5))
    f.post(client, f.sold("A", "A", fulfillment_location_id="US-NYC-01"))  # published 05-14
    f.post(client, f.received(("A", 3), processed_at="2024-05-21T00:00:00Z"))
    sale = f.sold("A", logical_timestamp=2)
    sale["published_at"] = "2024-05-21T12:00:00Z"
    f.post(client, sale)
    count(client, "US-NYC-01", "2024-05-22T10:00:00Z", ("A", 7, 7))
    item = stores(client, since="2024-01-01")["US-NYC-01"]
    assert (item["counted_lines"], item["lines_with_drift"], item["score"]) == (1, 0, 1.0)


def test_quarantined_events_count_where_their_store_can_be_read(client: TestClient) -> None:
    negative = f.received(("A", -1), fulfillment_location_id="US-BOS-02")
    assert f.post(client, negative)["status"] == "quarantined"
    broken_sale = f.sold("A", fulfillment_location_id="US-BOS-02")
    del broken_sale["payload"]["logical_timestamp"]
    assert f.post(client, broken_sale)["status"] == "quarantined"
    # Valid, but a ledger rule refuses it: its store is read from the model.
    neither = f.adjustment(("A", 1), origin_stock_location_name=None)
    neither["payload"]["destination_stock_location_name"] = None
    neither["payload"]["fulfillment_node_id"] = "US-BOS-02"
    assert f.post(client, neither)["status"] == "quarantined"
    # No store to read.
    assert f.post(client, b"{not json")["status"] == "quarantined"
    nameless = f.received(("A", -1))
    del nameless["payload"]["fulfillment_location_id"]
    assert f.post(client, nameless)["status"] == "quarantined"

    found = stores(client)
    assert list(found) == ["US-BOS-02"]
    item = found["US-BOS-02"]
    assert item["quarantined_events"] == 3
    assert item["score"] is None
    assert item["last_counted_at"] is None
    assert f.events(client, status="quarantined", location_id="US-BOS-02")


def test_stale_incomplete_chunk_sets_wait_out_the_delivery_window(
    client: TestClient, db: Database
) -> None:
    chunk = f.received(("A", 1), chunk_number=1, total_chunks=2, fulfillment_location_id="S-1")
    assert f.post(client, chunk)["status"] == "accepted"
    # Just received: NewStore has 15 minutes to deliver the rest.
    assert "S-1" not in stores(client)  # nothing to say about that store yet

    now = utcnow()
    where = completeness.CompletenessFilter(since=now - timedelta(days=1))
    with db.snapshot() as conn:
        soon = completeness.by_location(conn, where, now + timedelta(minutes=14))
        later = completeness.by_location(conn, where, now + timedelta(minutes=16))
    assert soon == []
    assert [(i["location_id"], i["stale_incomplete_chunk_sets"]) for i in later] == [("S-1", 1)]

    rest = f.received(("A", 1), chunk_number=2, total_chunks=2, fulfillment_location_id="S-1")
    rest["payload"]["id"] = chunk["payload"]["id"]
    assert f.post(client, rest)["status"] == "accepted"
    with db.snapshot() as conn:
        assert completeness.by_location(conn, where, now + timedelta(minutes=16)) == []


def test_filters_window_and_pages(client: TestClient) -> None:
    counted_store(client, "A-STORE")
    counted_store(client, "B-STORE")
    assert f.post(client, f.received(("A", -1), fulfillment_location_id="C-STORE"))
    everything = stores(client, since="2024-01-01")
    assert list(everything) == ["A-STORE", "B-STORE", "C-STORE"]
    assert list(stores(client, location_id="B-STORE", since="2024-01-01")) == ["B-STORE"]
    assert stores(client, tenant="nobody") == {}

    # The counts are older than the default 30 days: still listed, with no lines in the window.
    recent = stores(client)
    assert recent["A-STORE"]["counted_lines"] == 0
    assert recent["A-STORE"]["score"] is None
    assert recent["A-STORE"]["last_counted_at"] == "2024-05-22T10:00:00Z"

    first = client.get(
        "/v1/reconciliation/completeness", params={"limit": 2}, headers=f.read_headers()
    ).json()
    assert [item["location_id"] for item in first["items"]] == ["A-STORE", "B-STORE"]
    rest = client.get(
        "/v1/reconciliation/completeness",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=f.read_headers(),
    ).json()
    assert [item["location_id"] for item in rest["items"]] == ["C-STORE"]
    assert rest["next_cursor"] is None

    bad = client.get(
        "/v1/reconciliation/completeness", params={"since": "soon"}, headers=f.read_headers()
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


def test_metrics_give_the_same_figures_by_store(client: TestClient) -> None:
    today = utcnow()
    first, second = (today - timedelta(days=2)).isoformat(), (today - timedelta(days=1)).isoformat()
    count(client, "US-NYC-01", first, ("A", 5, 5), ("B", 5, 5))
    # A sale of B never reached us: NewStore has one fewer on record than we expect.
    count(client, "US-NYC-01", second, ("A", 5, 5), ("B", 4, 4))
    assert f.post(client, f.received(("A", -1), fulfillment_location_id="US-BOS-02"))
    body = client.get("/metrics").text
    for sample in (
        'invsync_completeness_counted_lines{location_id="US-NYC-01"} 2.0',
        'invsync_completeness_lines_with_drift{location_id="US-NYC-01"} 1.0',
        'invsync_completeness_drift_units{location_id="US-NYC-01"} 1.0',
        'invsync_completeness_score{location_id="US-NYC-01"} 0.5',
        'invsync_completeness_stale_incomplete_chunk_sets{location_id="US-NYC-01"} 0.0',
        'invsync_completeness_quarantined_events{location_id="US-BOS-02"} 1.0',
        'invsync_completeness_quarantined_events{location_id="US-NYC-01"} 0.0',
        'invsync_completeness_last_count_timestamp_seconds{location_id="US-NYC-01"} ',
    ):
        assert sample in body, sample
    assert 'invsync_completeness_score{location_id="US-BOS-02"}' not in body  # never counted
    assert f.TENANT not in body


def test_other_content_under_a_taken_key_counts_for_its_store(client: TestClient) -> None:
    first = f.received(("A", 1), fulfillment_location_id="US-BOS-02")
    other = f.received(("A", 2), fulfillment_location_id="US-BOS-02")
    other["payload"]["id"] = first["payload"]["id"]
    assert f.post(client, first)["status"] == "accepted"
    assert f.post(client, other)["status"] == "quarantined"
    assert stores(client)["US-BOS-02"]["quarantined_events"] == 1
