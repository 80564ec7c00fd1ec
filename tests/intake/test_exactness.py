"""Exactness (PRODUCT.md section 10): duplicates, chunks, shuffled order and concurrent
deliveries leave the ledger equal to applying each distinct event once, and stock positions
follow the count-anchored rule of section 5 whatever the arrival order.

The expected ledger is computed here from the event bodies by a small independent model, never
by the code under test.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event, ledger_movement, metadata, outbox_message
from tests import factories as f
from tests.live import live_server

RETURN_LOCATIONS = {"2": "damaged"}  # as in the `settings` fixture
STORES = ("S1", "S2")
PRODUCTS = tuple(f"P{n}" for n in range(8))
BASE = datetime(2024, 5, 1, tzinfo=UTC)

Row = tuple[
    str, str, str, str, int, str, datetime
]  # tenant, store, stock loc, product, qty, kind, at


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class Stream:
    """A reproducible set of distinct events, each with the ledger rows it must produce."""

    def __init__(self, seed: int, size: int) -> None:
        self.rng = random.Random(seed)
        # Distinct seconds: no two events share an occurred_at, so "after the count" is exact.
        self.moments = iter(self.rng.sample(range(30 * 24 * 3600), size * 2))
        self.events: list[dict[str, Any]] = []
        self.expected: list[Row] = []
        self.counts: list[tuple[tuple[str, str, str, str], datetime, int]] = []
        while len(self.events) < size:
            self.add()

    def when(self) -> datetime:
        return BASE + timedelta(seconds=next(self.moments))

    def items(self, n: int) -> list[tuple[str, int]]:
        products = self.rng.sample(PRODUCTS, n)
        return [(p, self.rng.randint(1, 9)) for p in products]

    def add(self) -> None:
        rng = self.rng
        store, at = rng.choice(STORES), self.when()
        kind = rng.choices(
            ["receipt", "adjustment", "handover", "return", "count", "asn", "chunked"],
            weights=[30, 15, 15, 10, 8, 5, 5],
        )[0]
        lines = self.items(rng.randint(1, 3))
        if kind == "receipt":
            body = f.received(*lines, fulfillment_location_id=store, processed_at=stamp(at))
            self.expect(body, [(store, "main", p, q, "receipt") for p, q in lines], at)
        elif kind == "adjustment":
            origin, destination = rng.choice(
                [("main", "damaged"), ("damaged", "main"), ("main", None), (None, "main")]
            )
            body = f.adjustment(
                *lines,
                fulfillment_node_id=store,
                processed_at=stamp(at),
                origin_stock_location_name=origin,
                destination_stock_location_name=destination,
            )
            rows = []
            for p, q in lines:
                if origin:
                    rows.append((store, origin, p, -q, "adjustment"))
                if destination:
                    rows.append((store, destination, p, q, "adjustment"))
            self.expect(body, rows, at)
        elif kind == "handover":
            body = f.handover(*lines, fulfillment_location_id=store, processed_at=stamp(at))
            self.expect(body, [(store, "main", p, -q, "transfer_out") for p, q in lines], at)
        elif kind == "return":
            codes = [rng.choice([1, 2, "2", None]) for _ in lines]
            body = f.returned(
                *[
                    {"product_id": p, "quantity": q, "condition_code": c}
                    for (p, q), c in zip(lines, codes, strict=True)
                ],
                return_location_id=store,
                returned_at=stamp(at),
            )
            rows = [
                (store, RETURN_LOCATIONS.get(str(c), "main"), p, q, "return")
                for (p, q), c in zip(lines, codes, strict=True)
            ]
            self.expect(body, rows, at)
        elif kind == "count":
            triples = [(p, q, rng.randint(-2, 12)) for p, q in lines]
            body = f.counted(*triples, fulfillment_location_id=store, completed_at=stamp(at))
            self.expect(
                body, [(store, "main", p, c - s, "count_variance") for p, c, s in triples], at
            )
            self.counts += [((f.TENANT, store, "main", p), at, c) for p, c, _ in triples]
        elif kind == "asn":
            self.expect(f.asn(*lines, origin_id=store, shipment_date=stamp(at)), [], at)
        else:
            # One transaction in three chunks, each with its own lines, all at one moment.
            transaction = f.new_id()
            for chunk in (1, 2, 3):
                part = self.items(rng.randint(1, 2))
                body = f.received(
                    *part,
                    id=transaction,
                    chunk_number=chunk,
                    total_chunks=3,
                    fulfillment_location_id=store,
                    processed_at=stamp(at),
                )
                self.expect(body, [(store, "main", p, q, "receipt") for p, q in part], at)

    def expect(
        self, body: dict[str, Any], rows: list[tuple[str, str, str, int, str]], at: datetime
    ) -> None:
        self.events.append(body)
        self.expected += [(f.TENANT, *row, at) for row in rows]

    def deliveries(self, rng: random.Random) -> list[bytes]:
        """Every event once or more (a third are redelivered up to 3 times), shuffled."""
        bodies = []
        for event in self.events:
            copies = 1 + (rng.randint(1, 3) if rng.random() < 0.33 else 0)
            bodies += [json.dumps(event).encode()] * copies
        rng.shuffle(bodies)
        return bodies

    def positions(self) -> dict[tuple[str, str, str, str], tuple[int, bool]]:
        """Section 5: the latest count, plus non-count movements strictly after it."""
        latest: dict[tuple[str, str, str, str], tuple[datetime, int]] = {}
        for key, at, counted in self.counts:
            if key not in latest or at > latest[key][0]:
                latest[key] = (at, counted)
        totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
        keys = set(latest)
        for tenant, store, location, product, quantity, kind, at in self.expected:
            if kind == "count_variance":
                continue
            key = (tenant, store, location, product)
            keys.add(key)
            if key not in latest or at > latest[key][0]:
                totals[key] += quantity
        return {
            key: (latest[key][1] + totals[key] if key in latest else totals[key], key in latest)
            for key in keys
        }


def ledger_rows(db: Database) -> Counter[Row]:
    m = ledger_movement
    with db.snapshot() as conn:
        rows = conn.execute(
            select(
                m.c.tenant,
                m.c.location_id,
                m.c.stock_location,
                m.c.product_id,
                m.c.quantity,
                m.c.kind,
                m.c.occurred_at,
            )
        ).all()
    return Counter(tuple(row) for row in rows)  # type: ignore[misc]


def positions(client: TestClient) -> dict[tuple[str, str, str, str], tuple[int, bool]]:
    return {
        (p["tenant"], p["location_id"], p["stock_location"], p["product_id"]): (
            p["on_hand"],
            p["anchored"],
        )
        for p in f.stock(client)
    }


def count(db: Database, table: Any) -> int:
    with db.snapshot() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def empty(db: Database) -> None:
    with db.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "credential":
                conn.execute(delete(table))


def post_all(base_url: str, bodies: list[bytes], threads: int) -> Counter[str]:
    """Post every body from `threads` connections at once; returns the statuses."""
    local = threading.local()

    def send(body: bytes) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=60)
            clients.append(local.client)
        response = local.client.post(
            "/webhooks/newstore", content=body, headers=f.webhook_headers()
        )
        assert response.status_code == 200, response.text
        status: str = response.json()["status"]
        return status

    clients: list[httpx.Client] = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            return Counter(pool.map(send, bodies))
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def live(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


class TestManyEvents:
    def test_ledger_equals_each_distinct_event_applied_once(
        self, live: str, client: TestClient, db: Database
    ) -> None:
        stream = Stream(seed=20240514, size=1500)
        bodies = stream.deliveries(random.Random(1))
        assert len(stream.events) >= 1500
        assert len(bodies) > len(stream.events) * 1.3

        statuses = post_all(live, bodies, threads=8)

        assert statuses["accepted"] == len(stream.events)
        assert statuses["duplicate"] == len(bodies) - len(stream.events)
        assert set(statuses) == {"accepted", "duplicate"}
        assert ledger_rows(db) == Counter(stream.expected)
        assert count(db, inbound_event) == len(stream.events)
        assert count(db, outbox_message) == len(stream.events)
        assert positions(client) == stream.positions()

    def test_positions_do_not_depend_on_arrival_order(
        self, client: TestClient, db: Database
    ) -> None:
        stream = Stream(seed=7, size=150)
        first = stream.deliveries(random.Random(2))
        for body in first:
            f.post(client, body)
        in_one_order = positions(client)
        movements = ledger_rows(db)

        empty(db)
        assert positions(client) == {}
        for body in reversed(stream.deliveries(random.Random(3))):
            f.post(client, body)

        assert positions(client) == in_one_order == stream.positions()
        assert ledger_rows(db) == movements == Counter(stream.expected)


class TestCountAnchor:
    def test_a_late_event_from_before_the_count_changes_nothing(self, client: TestClient) -> None:
        def on_hand() -> tuple[int, bool]:
            [position] = f.stock(client, product_id="A")
            return position["on_hand"], position["anchored"]

        f.post(client, f.received(("A", 5), processed_at="2024-05-10T10:00:00Z"))
        assert on_hand() == (5, False)
        f.post(client, f.counted(("A", 10, 5), completed_at="2024-05-12T10:00:00Z"))
        assert on_hand() == (10, True)
        # Happened before the count, arrives after it: the count already includes it.
        f.post(client, f.received(("A", 3), processed_at="2024-05-11T10:00:00Z"))
        f.post(client, f.handover(("A", 1), processed_at="2024-05-12T10:00:00Z"))
        assert on_hand() == (10, True)
        f.post(client, f.received(("A", 2), processed_at="2024-05-12T10:00:00.000001Z"))
        assert on_hand() == (12, True)
        # An older count arriving late does not replace the newer anchor.
        f.post(client, f.counted(("A", 99, 0), completed_at="2024-05-11T00:00:00Z"))
        assert on_hand() == (12, True)
        # A newer count does.
        f.post(client, f.counted(("A", 4, 12), completed_at="2024-05-13T00:00:00Z"))
        assert on_hand() == (4, True)

    def test_count_anchors_only_its_own_stock_location(self, client: TestClient) -> None:
        f.post(client, f.adjustment(("A", 2), processed_at="2024-05-10T00:00:00Z"))
        f.post(client, f.counted(("A", 7, 0), completed_at="2024-05-11T00:00:00Z"))
        by_location = {p["stock_location"]: (p["on_hand"], p["anchored"]) for p in f.stock(client)}
        assert by_location == {"main": (7, True), "damaged": (2, False)}


class TestConcurrentDeliveries:
    """Identical requests released at the same instant from several connections."""

    THREADS = 8

    def burst(self, base_url: str, bodies: list[bytes]) -> list[httpx.Response]:
        barrier = threading.Barrier(len(bodies))
        clients = [httpx.Client(base_url=base_url, timeout=60) for _ in bodies]
        try:
            for client in clients:  # connect first, so the barrier releases the requests only
                client.get("/healthz")

            def send(pair: tuple[httpx.Client, bytes]) -> httpx.Response:
                client, body = pair
                barrier.wait()
                return client.post("/webhooks/newstore", content=body, headers=f.webhook_headers())

            with ThreadPoolExecutor(len(bodies)) as pool:
                return list(pool.map(send, zip(clients, bodies, strict=True)))
        finally:
            for client in clients:
                client.close()

    def test_identical_deliveries_have_one_effect(self, live: str, db: Database) -> None:
        for _ in range(10):
            body = json.dumps(f.adjustment(("A", 2), ("B", 1))).encode()
            responses = self.burst(live, [body] * self.THREADS)
            assert {r.status_code for r in responses} == {200}
            answers = [r.json() for r in responses]
            statuses = Counter(a["status"] for a in answers)
            assert statuses == {"accepted": 1, "duplicate": self.THREADS - 1}
            assert len({a["event_id"] for a in answers}) == 1
        assert count(db, inbound_event) == 10
        assert count(db, outbox_message) == 10
        assert count(db, ledger_movement) == 10 * 4

    def test_chunks_of_one_transaction_at_once(self, live: str, db: Database) -> None:
        transaction = f.new_id()
        chunks = [
            json.dumps(
                f.received((f"P{n}", n), id=transaction, chunk_number=n, total_chunks=4)
            ).encode()
            for n in (1, 2, 3, 4)
        ]
        responses = self.burst(live, chunks * 2)
        assert Counter(r.json()["status"] for r in responses) == {"accepted": 4, "duplicate": 4}
        assert ledger_rows(db).total() == 4
        assert sum(row[4] for row in ledger_rows(db)) == 1 + 2 + 3 + 4

    def test_same_key_different_content_at_once(self, live: str, db: Database) -> None:
        body = f.received(("A", 1))
        other = json.loads(json.dumps(body))
        other["payload"]["items"][0]["quantity"] = 5
        first, second = json.dumps(body).encode(), json.dumps(other).encode()
        responses = self.burst(live, [first, second] * 4)
        statuses = Counter(r.json()["status"] for r in responses)
        assert statuses == {"accepted": 1, "quarantined": 1, "duplicate": 6}
        [(row, times)] = ledger_rows(db).items()
        assert times == 1
        assert row[4] in (1, 5)
        assert count(db, inbound_event) == 2
