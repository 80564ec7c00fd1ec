"""A realistic NewStore stream for two stores, and the check that Tryton holds what
`/v1/stock` says.

Receipts (one in two chunks), a transfer between the stores (handover, ASN, receipt naming
it), adjustments into and out of `damaged`, returns to `main` and to `damaged`, cycle counts
whose `stock_on_hand` is NewStore's own figure at the time, and receipts after the counts. Each
event happens at its own time; they are delivered in another order, some twice.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import factories as f
from tests.tryton import kit

Position = tuple[str, str, str]  # (store, stock location, product)
NYC, BOS = kit.STORES
LOCATIONS = ("main", "damaged")


def events(products: list[str], seed: int) -> list[dict[str, Any]]:
    """The distinct events (chunks count one each), in the order they happened."""
    rng = random.Random(seed)
    clock = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    on_hand: Counter[Position] = Counter()  # NewStore's stock, to give counts their figure
    bodies: list[dict[str, Any]] = []

    def when() -> str:
        nonlocal clock
        clock += timedelta(minutes=rng.randint(1, 90))
        return clock.isoformat().replace("+00:00", "Z")

    def receive(store: str, pairs: list[tuple[str, int]], **extra: Any) -> None:
        bodies.append(
            f.received(*pairs, fulfillment_location_id=store, processed_at=when(), **extra)
        )
        for p, q in pairs:
            on_hand[(store, "main", p)] += q

    for store in (NYC, BOS):
        pairs = [(p, rng.randint(10, 30)) for p in products]
        first = f.received(
            *pairs[:2], fulfillment_location_id=store, processed_at=when(), total_chunks=2
        )
        second = f.received(
            *pairs[2:],
            fulfillment_location_id=store,
            processed_at=first["payload"]["processed_at"],
            id=first["payload"]["id"],
            chunk_number=2,
            total_chunks=2,
        )
        bodies += [first, second]
        for p, q in pairs:
            on_hand[(store, "main", p)] += q

    a, b, c, d = products[:4]
    shipped = [(a, 3), (b, 2)]
    bodies.append(f.handover(*shipped, fulfillment_location_id=BOS, processed_at=when()))
    asn = f.asn(*shipped, origin_id=BOS, shipment_date=when())
    bodies.append(asn)
    for p, q in shipped:
        on_hand[(BOS, "main", p)] -= q
    receive(NYC, shipped, asn_id=asn["payload"]["id"])

    bodies.append(f.adjustment((c, 4), fulfillment_node_id=NYC, processed_at=when()))
    on_hand[(NYC, "main", c)] -= 4
    on_hand[(NYC, "damaged", c)] += 4
    bodies.append(
        f.adjustment(
            (c, 1),
            fulfillment_node_id=NYC,
            origin_stock_location_name="damaged",
            destination_stock_location_name=None,
            processed_at=when(),
        )
    )
    on_hand[(NYC, "damaged", c)] -= 1
    bodies.append(
        f.returned(
            {"product_id": d, "quantity": 2, "condition_code": 2},
            {"product_id": a, "quantity": 1},
            return_location_id=BOS,
            returned_at=when(),
        )
    )
    on_hand[(BOS, "damaged", d)] += 2
    on_hand[(BOS, "main", a)] += 1

    for store in (NYC, BOS):
        triples = []
        for p in (a, b, c):
            figure = on_hand[(store, "main", p)]
            counted = max(0, figure + rng.randint(-3, 3))
            triples.append((p, counted, figure))
            on_hand[(store, "main", p)] = counted
        bodies.append(f.counted(*triples, fulfillment_location_id=store, completed_at=when()))
    receive(NYC, [(a, 5), (d, 1)])
    return bodies


def deliveries(bodies: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """`bodies` in another order, about a third of them twice."""
    rng = random.Random(seed)
    sent = bodies + [body for body in bodies if rng.random() < 0.35]
    rng.shuffle(sent)
    return sent


def assert_tryton_holds(
    tryton: kit.Client, stock: list[dict[str, Any]], products: list[str]
) -> None:
    """Tryton's quantity of every product at every store location equals `/v1/stock`."""
    ours: Counter[Position] = Counter()
    for row in stock:
        ours[(row["location_id"], row["stock_location"], row["product_id"])] += row["on_hand"]
    assert any(ours.values()), "the stream moved no stock"
    theirs: Counter[Position] = Counter()
    for store in kit.STORES:
        for where in LOCATIONS:
            for p, q in tryton.quantities(store, where, products).items():
                theirs[(store, where, p)] = q
    keys = set(ours) | set(theirs)
    assert {k: theirs[k] for k in keys} == {k: ours[k] for k in keys}
