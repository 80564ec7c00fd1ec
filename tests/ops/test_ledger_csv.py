"""`GET /v1/ledger?format=csv`: the same movements as the JSON ledger, streamed in batches."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inventory_sync.api import csv_export
from inventory_sync.api.routes import ledger as ledger_router
from inventory_sync.storage.database import Database
from inventory_sync.views import ledger as repository
from tests import factories as f


def as_csv_cells(movement: dict[str, Any]) -> dict[str, str]:
    """A JSON movement as the CSV writes it."""
    cells = {}
    for column in ledger_router.CSV_COLUMNS:
        value = movement[column]
        if column == "references":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        text = "" if value is None else str(value)
        # Text a spreadsheet would run as a formula gets a leading quote; numbers stay numbers.
        if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
            text = "'" + text
        cells[column] = text
    return cells


def csv_rows(client: TestClient, **filters: Any) -> list[dict[str, str]]:
    response = client.get(
        "/v1/ledger", params={"format": "csv", **filters}, headers=f.read_headers()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    assert reader.fieldnames == ledger_router.CSV_COLUMNS
    return list(reader)


@pytest.fixture
def populated(client: TestClient) -> TestClient:
    f.post(client, f.received(("A", 3), ("B", 1), processed_at="2024-05-01T10:00:00Z"))
    f.post(client, f.adjustment(("A", 1), processed_at="2024-05-02T10:00:00Z"))
    f.post(client, f.handover(("B", 1), fulfillment_location_id="US-BOS-02"))
    f.post(client, f.counted(("A", 2, 3)))
    f.post(
        client,
        f.received(
            ('=HYPERLINK("http://x")', 1),
            ("+cmd|' /C calc'!A0", 1),
            ("-2+3", 1),
            ("@SUM(A1)", 1),
            ("\tTAB", 1),
            ("\rCR", 1),
            fulfillment_location_id="=1+1",
        ),
    )
    f.post(
        client,
        f.returned(
            {"product_id": 'Ü-ñ,"quoted"', "quantity": 1, "condition_code": "2"},
            returned_at="2024-05-03T10:00:00.123456Z",
        ),
    )
    return client


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"kind": "receipt"},
        {"product_id": "A"},
        {"location_id": "US-BOS-02"},
        {"stock_location": "damaged"},
        {"since": "2024-05-02", "until": "2024-05-03T12:00:00Z"},
        {"tenant": f.TENANT, "kind": "count_variance"},
        {"event_id": 1},
        {"product_id": "nothing"},
    ],
)
def test_csv_equals_json(populated: TestClient, filters: dict[str, Any]) -> None:
    expected = [as_csv_cells(m) for m in f.ledger(populated, **filters)]
    assert csv_rows(populated, **filters) == expected


def test_formula_like_text_is_neutralised_and_numbers_are_not(populated: TestClient) -> None:
    rows = csv_rows(populated, location_id="=1+1")
    assert [r["product_id"] for r in rows] == [
        '\'=HYPERLINK("http://x")',
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "'@SUM(A1)",
        "'\tTAB",
        "'\rCR",
    ]
    assert {r["location_id"] for r in rows} == {"'=1+1"}
    adjusted = csv_rows(populated, kind="adjustment")
    assert "-1" in [r["quantity"] for r in adjusted]
    # The JSON ledger is verbatim.
    assert f.ledger(populated, location_id="=1+1")[0]["product_id"] == '=HYPERLINK("http://x")'


def test_csv_ignores_the_page_size(populated: TestClient) -> None:
    assert len(csv_rows(populated, limit=1)) == len(f.ledger(populated)) > 1


def test_large_export_streams_in_keyset_batches(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        f.post(client, f.received(*((f"P{n}", 1) for n in range(400))))
    fetched: list[int] = []
    original = repository.list_movements

    def spying(conn: Any, where: Any, limit: int, after: int | None) -> Any:
        fetched.append(limit)
        return original(conn, where, limit, after)

    monkeypatch.setattr(repository, "list_movements", spying)
    monkeypatch.setattr(csv_export, "BATCH", 100)
    rows = ledger_router._movements(db, repository.MovementFilter())
    chunks = csv_export.lines(ledger_router.CSV_COLUMNS, rows)
    first = next(chunks)
    # Only the first batch was read when the first piece of the body was ready.
    assert first.count("\n") == 101
    assert len(fetched) == 1
    rest = list(chunks)
    assert fetched == [100] * 13
    body = first + "".join(rest)
    assert body.count("\n") == 1201
    assert len(rest) >= 2


def test_each_movement_names_its_own_event(client: TestClient) -> None:
    # Rows carry no event name: it is joined from the event. Event and movement ids differ
    # here (three movements for the first event), so a join on the wrong column shows.
    received = f.post(client, f.received(("A", 1), ("B", 2), ("C", 3)))["event_id"]
    adjusted = f.post(client, f.adjustment(("A", 1)))["event_id"]
    names = {
        received: "inventory_transaction.items_received",
        adjusted: "inventory_transaction.adjustment_created",
    }

    movements = f.ledger(client)
    assert [m["event_id"] for m in movements] == [received] * 3 + [adjusted] * 2
    assert all(m["event_name"] == names[m["event_id"]] for m in movements)
    assert [row["event_name"] for row in csv_rows(client)] == [m["event_name"] for m in movements]
    for event_id, name in names.items():
        assert {m["event_name"] for m in f.event(client, event_id)["movements"]} == {name}
