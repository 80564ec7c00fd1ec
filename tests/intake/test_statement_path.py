"""The two stores write an accepted event alike, at intake and at replay; on PostgreSQL an event
and its redelivery each cost one statement."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, select, text

from inventory_sync.clock import utcnow
from inventory_sync.intake.classify import Rules, Status, classify, sha256
from inventory_sync.storage.postgres import PostgresStore
from inventory_sync.storage.store import Store, open_store
from inventory_sync.storage.tables import (
    count_observation,
    ledger_movement,
    metadata,
    outbox_message,
    shipment_line,
)
from tests import factories as f

TABLES = (ledger_movement, count_observation, shipment_line, outbox_message)
BODIES = {
    "receipt with identifiers": f.received(
        ("A", 2), ("B", 1), asn_id="ASN-9", order_ref="PO-1", shipment_ref="S-1"
    ),
    "adjustment, two legs": f.adjustment(("A", 3), ("B", 1)),
    "adjustment, destination only": f.adjustment(("A", 3), origin_stock_location_name=None),
    "count": f.counted(("A", 5, 3), ("B", 0, 2), stock_location="backroom"),
    "asn": f.asn(("A", 4), ("B", 6), destination_location_id="US-BOS-02"),
    "handover without quantity": f.handover(("A", 2)),
    "return": f.returned(
        {"product_id": "A", "quantity": 1, "condition_code": "2", "return_reason": "too big"},
        {"product_id": "B", "quantity": 2},
    ),
    # Without INVSYNC_ERP_SEND_SALES: ledger rows and no outbox message.
    "sale": f.sold("A", "A", "B"),
}
BODIES["receipt with identifiers"]["payload"]["items"][0]["external_identifiers"] = {"ean": "1"}
del BODIES["handover without quantity"]["payload"]["items"][0]["quantity"]
RULES = Rules(return_locations={"2": "damaged"})


def _order(table: Table) -> list[Any]:
    return [table.c.id] if table is not outbox_message else [table.c.created_at]


async def written(store: Store, body: dict[str, Any], now: datetime, replay: bool) -> Any:
    """Every row the event's effect wrote, without generated ids."""
    raw = json.dumps(body).encode()
    item = classify(raw, RULES, sha256(raw))
    assert item.status is Status.ACCEPTED, item.error
    assert item.slot is not None
    if replay:
        held = dataclasses.replace(item, status=Status.QUARANTINED, error="held")
        recorded = await store.record_event(held.row(item.slot, raw, None, now))
        verdict = item.verdict(item.slot, now)
        assert await store.apply_replay(recorded.event_id, verdict, now, item.write)
    else:
        recorded = await store.record_event(item.row(item.slot, raw, None, now), item.write)
    assert recorded.inserted
    rows: dict[str, list[Any]] = {}
    with store.database.snapshot() as conn:
        for table in TABLES:
            rows[table.name] = [
                {k: v for k, v in row._mapping.items() if k not in ("id", "event_id")}
                for row in conn.execute(
                    select(table)
                    .where(table.c.event_id == recorded.event_id)
                    .order_by(*_order(table))
                )
            ]
    return rows


def anonymous(value: Any, payload_id: str) -> Any:
    """`value` with the event's payload id replaced by a placeholder, at any depth."""
    if value == payload_id:
        return "<payload id>"
    if isinstance(value, dict):
        return {k: anonymous(v, payload_id) for k, v in value.items()}
    if isinstance(value, list):
        return [anonymous(v, payload_id) for v in value]
    return value


@pytest.fixture
def both(tmp_path: Path, sqlite_template: Path, postgres_url: str) -> Iterator[list[str]]:
    """An empty database of each backend."""
    path = tmp_path / "parity.db"
    shutil.copy(sqlite_template, path)
    yield [f"sqlite:///{path}", postgres_url]

    async def empty() -> None:
        store = await open_store(postgres_url)
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        with store.database.transaction() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await store.close()

    asyncio.run(empty())


@pytest.mark.parametrize("name", list(BODIES))
def test_both_stores_write_the_same_rows_at_intake_and_at_replay(
    both: list[str], name: str
) -> None:
    now = utcnow()

    async def run() -> list[Any]:
        results = []
        for url in both:
            store = await open_store(url)
            try:
                for replay in (False, True):
                    body = json.loads(json.dumps(BODIES[name]))
                    body["payload"]["id"] = f.new_id()  # a new event each time
                    rows = await written(store, body, now, replay)
                    for row in rows["outbox_message"]:  # its id follows the payload id
                        document = json.loads(row["document"])
                        document.pop("id")
                        row["document"] = document
                    results.append(anonymous(rows, body["payload"]["id"]))
            finally:
                await store.close()
        return results

    results = asyncio.run(run())
    for other in results[1:]:
        assert other == results[0], name
    assert sum(len(rows) for rows in results[0].values()) >= 2


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the PostgreSQL store sends from now on."""
    seen: list[str] = []
    fetch = PostgresStore._fetch

    async def fetching(store: PostgresStore, sql: str, args: Any) -> Any:
        seen.append(sql)
        return await fetch(store, sql, args)

    monkeypatch.setattr(PostgresStore, "_fetch", fetching)
    return seen


@pytest.mark.parametrize("name", list(BODIES))
def test_an_event_and_its_redelivery_are_one_statement_each(
    client: TestClient, statements: list[str], name: str
) -> None:
    if client.app.state.settings.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("round trips are PostgreSQL's")
    body = json.dumps(BODIES[name])
    statements.clear()
    first = f.post(client, body)
    assert first["status"] == "accepted"
    assert len(statements) == 1
    statements.clear()
    assert f.post(client, body)["status"] == "duplicate"
    assert len(statements) == 1
