"""On PostgreSQL an accepted event is written by one statement (`record_with_event`); replay
and SQLite use `record()`. Both must write the same rows, column for column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, event, select

from inventory_sync.db import Database, utcnow
from inventory_sync.erp_sync.models import outbox_message
from inventory_sync.ledger import service as ledger_service
from inventory_sync.ledger.models import count_observation, ledger_movement, shipment_line
from inventory_sync.webhooks import service
from tests import factories as f

TABLES = (ledger_movement, count_observation, shipment_line, outbox_message)
BODIES = {
    "receipt with identifiers": f.received(
        ("A", 2), ("B", 1), asn_id="ASN-9", order_ref="PO-1", shipment_ref="S-1"
    ),
    "adjustment, two legs": f.adjustment(("A", 3), ("B", 1)),
    "count": f.counted(("A", 5, 3), ("B", 0, 2), stock_location="backroom"),
    "asn": f.asn(("A", 4), ("B", 6), destination_location_id="US-BOS-02"),
    "return": f.returned(
        {"product_id": "A", "quantity": 1, "condition_code": "2", "return_reason": "too big"},
        {"product_id": "B", "quantity": 2},
    ),
}
BODIES["receipt with identifiers"]["payload"]["items"][0]["external_identifiers"] = {"ean": "1"}


def written(
    db: Database, body: dict[str, Any], now: datetime, one_statement: bool
) -> dict[str, list[Any]]:
    """Every row the event's effect wrote, without generated ids; rolled back afterwards."""
    raw = json.dumps(body).encode()
    item = service.classify(raw, service.Rules(return_locations={"2": "damaged"}))
    assert item.status == service.ACCEPTED, item.error
    rows: dict[str, list[Any]] = {}
    with db.transaction() as conn:
        transaction = conn.get_transaction()
        assert transaction is not None
        values = service._row_values(item, "slot", raw, None, now)
        if one_statement:
            found = service.ledger_service.record_with_event(
                conn, values, service._source(0, item), service._effect(item), now
            )
            assert found is not None
            assert found[1]
            event_id = found[0]
        else:
            event_id = service._insert(conn, values)
            assert event_id is not None
            service.apply(conn, event_id, item, now)
        for table in TABLES:
            rows[table.name] = [
                {k: v for k, v in row._mapping.items() if k not in ("id", "event_id")}
                for row in conn.execute(
                    select(table).where(table.c.event_id == event_id).order_by(*_order(table))
                )
            ]
        transaction.rollback()
    return rows


def _order(table: Table) -> list[Any]:
    return [table.c.id] if table is not outbox_message else [table.c.created_at]


@pytest.mark.parametrize("name", list(BODIES))
def test_one_statement_writes_what_record_writes(db: Database, name: str) -> None:
    if db.is_sqlite:
        pytest.skip("the one-statement path is PostgreSQL's")
    now = utcnow()
    by_statement = written(db, BODIES[name], now, one_statement=True)
    by_record = written(db, BODIES[name], now, one_statement=False)
    assert by_statement == by_record
    assert sum(len(rows) for rows in by_statement.values()) > 2


@pytest.fixture
def statements(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the app runs while the test does: through SQLAlchemy, and the one
    intake runs on the driver's connection itself."""
    seen: list[str] = []
    engine = client.app.state.db.engine  # type: ignore[attr-defined]

    def record(*args: Any) -> None:
        seen.append(args[2])

    def first_row(conn: Any, sql: str, params: Any) -> Any:
        seen.append(sql)
        return on_driver(conn, sql, params)

    on_driver = ledger_service.first_row
    monkeypatch.setattr(ledger_service, "first_row", first_row)
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("name", list(BODIES))
def test_an_event_and_its_redelivery_are_one_statement_each(
    client: TestClient, statements: list[str], name: str
) -> None:
    if client.app.state.db.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("the one-statement path is PostgreSQL's")
    body = json.dumps(BODIES[name])
    statements.clear()
    first = f.post(client, body)
    assert first["status"] == "accepted"
    assert len(statements) == 1
    statements.clear()
    assert f.post(client, body)["status"] == "duplicate"
    assert len(statements) == 1
