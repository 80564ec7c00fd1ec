"""Count drift in a store that sells (PRODUCT.md section 6), on both backends.

NewStore's side is modelled here on its own: its stock on hand at `main` is the first count's
figure plus every unit it booked in or out after it, whichever events reached us. Between two
counts the store receives, sells, adjusts, transfers out and takes returns. With every event
delivered the second count's drift is 0 for every product, in any arrival order; with events
withheld it is exactly the withheld units.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories as f
from tests.reconciliation.test_transfers import pages

FIRST_COUNT = "2024-05-20T10:00:00Z"
SECOND_COUNT = "2024-05-22T10:00:00Z"
FIRST = {"A": 10, "B": 5, "C": 0}
"""What the first count found at `main`, which NewStore's stock on hand then is."""


@dataclass(frozen=True)
class Booked:
    """An event, and what NewStore books at `main` for it, by product."""

    label: str
    body: dict[str, Any]
    main: dict[str, int]


def at(store: str, body: dict[str, Any], when: str, field: str | None) -> dict[str, Any]:
    body["payload"][field or "fulfillment_location_id"] = store
    if field is None:
        body["published_at"] = when  # a sale has no time of its own
    else:
        body["payload"][time_field(body)] = when
    return body


def time_field(body: dict[str, Any]) -> str:
    return {
        "inventory_transaction.items_received": "processed_at",
        "inventory_transaction.adjustment_created": "processed_at",
        "inventory_transaction.items_ready_for_handover": "processed_at",
        "return.processed": "returned_at",
    }[body["name"]]


def between(store: str) -> list[Booked]:
    """The store's events between the two counts."""
    order = f.new_id()
    return [
        Booked(
            "receipt",
            at(
                store,
                f.received(("A", 6), ("B", 2)),
                "2024-05-20T12:00:00Z",
                "fulfillment_location_id",
            ),
            {"A": 6, "B": 2},
        ),
        Booked(
            "sale",
            at(
                store,
                f.sold("A", "A", "B", order_id=order, logical_timestamp=1),
                "2024-05-20T13:00:00Z",
                None,
            ),
            {"A": -2, "B": -1},
        ),
        Booked(
            "second sale of the same order",
            at(
                store,
                f.sold("C", order_id=order, logical_timestamp=2),
                "2024-05-20T13:05:00Z",
                None,
            ),
            {"C": -1},
        ),
        Booked(
            "damaged out of main",
            at(store, f.adjustment(("A", 1)), "2024-05-21T09:00:00Z", "fulfillment_node_id"),
            {"A": -1},
        ),
        Booked(
            "written off",
            at(
                store,
                f.adjustment(("B", 1), destination_stock_location_name=None),
                "2024-05-21T09:30:00Z",
                "fulfillment_node_id",
            ),
            {"B": -1},
        ),
        Booked(
            "found",
            at(
                store,
                f.adjustment(
                    ("C", 3),
                    origin_stock_location_name=None,
                    destination_stock_location_name="main",
                ),
                "2024-05-21T10:00:00Z",
                "fulfillment_node_id",
            ),
            {"C": 3},
        ),
        Booked(
            "transfer out",
            at(store, f.handover(("A", 2)), "2024-05-21T11:00:00Z", "fulfillment_location_id"),
            {"A": -2},
        ),
        Booked(
            "return to main",
            at(
                store,
                f.returned({"product_id": "A", "quantity": 1, "condition_code": 1}),
                "2024-05-21T15:00:00Z",
                "return_location_id",
            ),
            {"A": 1},
        ),
        Booked(
            "damaged return",
            at(
                store,
                f.returned({"product_id": "B", "quantity": 1, "condition_code": 2}),
                "2024-05-21T15:10:00Z",
                "return_location_id",
            ),
            {},  # INVSYNC_RETURN_LOCATIONS sends condition 2 to `damaged`
        ),
    ]


def outside(store: str) -> list[dict[str, Any]]:
    """Events before the first count and after the second: no part of the drift."""
    return [
        at(store, f.received(("A", 40)), "2024-05-19T09:00:00Z", "fulfillment_location_id"),
        at(store, f.sold("B", logical_timestamp=99), "2024-05-22T10:00:01Z", None),
    ]


def counts(store: str, booked: list[Booked]) -> list[dict[str, Any]]:
    first = f.counted(*((p, n, n + 1) for p, n in FIRST.items()), completed_at=FIRST_COUNT)
    on_hand = dict(FIRST)
    for event in booked:
        for product, units in event.main.items():
            on_hand[product] += units
    # The physical count may differ from the record (theft, say): drift is not about that.
    second = f.counted(*((p, n - 1, n) for p, n in on_hand.items()), completed_at=SECOND_COUNT)
    for body in (first, second):
        body["payload"]["fulfillment_location_id"] = store
    return [first, second]


def deliver(client: TestClient, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        answer = f.post(client, body)
        assert answer["status"] == "accepted", answer


def drift(client: TestClient, store: str) -> dict[str, int]:
    lines = pages(client, "/v1/reconciliation/counts", location_id=store, since="2024-05-21")
    return {line["product_id"]: line["drift"] for line in lines}


def test_every_event_delivered_in_any_order_drifts_by_nothing(client: TestClient) -> None:
    stores = [f"STORE-{n}" for n in range(6)]
    for n, store in enumerate(stores):
        booked = between(store)
        bodies = [event.body for event in booked] + outside(store) + counts(store, booked)
        if n == 1:
            bodies.reverse()
        elif n > 1:
            random.Random(n).shuffle(bodies)
        deliver(client, bodies)
    for store in stores:
        assert drift(client, store) == {"A": 0, "B": 0, "C": 0}, store
    # The stock position follows NewStore's: the second count, then the sale after it.
    positions = {
        p["product_id"]: p["on_hand"]
        for p in f.stock(client, location_id=stores[0], stock_location="main")
    }
    assert positions == {"A": 11, "B": 4 - 1, "C": 1}


@pytest.mark.parametrize(
    "withheld",
    [
        ("sale",),
        ("receipt",),
        ("damaged out of main", "written off", "damaged return"),
        ("sale", "second sale of the same order", "transfer out", "found", "written off"),
    ],
)
def test_withheld_events_drift_by_exactly_their_units(
    client: TestClient, withheld: tuple[str, ...]
) -> None:
    store = "US-LOST-01"
    booked = between(store)
    missing: dict[str, int] = {"A": 0, "B": 0, "C": 0}
    delivered = []
    for event in booked:
        if event.label in withheld:
            for product, units in event.main.items():
                missing[product] += units
        else:
            delivered.append(event.body)
    bodies = delivered + outside(store) + counts(store, booked)
    random.Random(len(withheld)).shuffle(bodies)
    deliver(client, bodies)
    assert drift(client, store) == missing
    assert any(missing.values())


LABELS = [event.label for event in between("any")]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(order=st.randoms(use_true_random=False), withheld=st.sets(st.sampled_from(LABELS)))
def test_any_order_and_any_events_withheld(
    client: TestClient, order: random.Random, withheld: set[str]
) -> None:
    store = f"HYP-{f.new_id()}"  # examples share the database, never a store
    booked = between(store)
    missing = {"A": 0, "B": 0, "C": 0}
    for event in booked:
        if event.label in withheld:
            for product, units in event.main.items():
                missing[product] += units
    bodies = [event.body for event in booked if event.label not in withheld]
    bodies += outside(store) + counts(store, booked)
    order.shuffle(bodies)
    deliver(client, bodies)
    assert drift(client, store) == missing
