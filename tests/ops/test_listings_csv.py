"""`format=csv` on every listing: the JSON items as rows, every one whatever `limit` says; a
400 problem on answers that are no listing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inventory_sync.api import csv_export
from inventory_sync.api.routes import events as events_router
from inventory_sync.api.routes import ledger as ledger_router
from inventory_sync.api.routes import reconciliation as reconciliation_router
from inventory_sync.api.routes import sync as sync_router
from tests import factories as f
from tests.reconciliation.test_transfers import pages

SHOULD_QUOTE = ("=", "+", "-", "@", "\t", "\r")


def text_of(value: Any) -> str:
    """A JSON value as the CSV is expected to write it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(SHOULD_QUOTE):
        return "'" + value
    return str(value)


def csv_rows(client: TestClient, path: str, **params: Any) -> tuple[list[str], list[list[str]]]:
    response = client.get(
        path, params={"format": "csv", "limit": 1, **params}, headers=f.read_headers()
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    header, *rows = list(csv.reader(io.StringIO(response.text, newline="")))
    return header, rows


def as_rows(columns: list[str], items: Iterator[dict[str, Any]]) -> list[list[str]]:
    return [[text_of(item.get(c)) for c in columns] for item in items]


def per_product(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        for line in item["lines"]:
            yield {**item, **line}


def flat_stock(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        last = item["last_count"] or {}
        yield {**item, **{f"last_count_{k}": v for k, v in last.items()}}


@pytest.fixture
def populated(client: TestClient) -> TestClient:
    f.post(client, f.received(("=cmd()", 3), ("B", 1), processed_at="2024-05-01T10:00:00Z"))
    shipped = f.asn(("A", 2), ("B", 1), id="ASN-1")
    f.post(client, shipped)
    f.post(client, f.received(("A", 1), asn_id="ASN-1", fulfillment_location_id="US-BOS-02"))
    f.post(client, f.received(("C", 4), asn_id="@ASN-NEVER-SEEN"))
    f.post(client, f.counted(("A", 5, 4), completed_at="2024-05-02T10:00:00Z"))
    f.post(client, f.counted(("A", 6, 5), completed_at="2024-05-03T10:00:00Z"))
    f.post(client, f.received(("D", 1), id="P-1", chunk_number=1, total_chunks=3))
    f.post(client, f.received(("A", -1)))  # quarantined
    return client


LISTINGS = [
    ("/v1/events", events_router.CSV_COLUMNS, list),
    ("/v1/sync/messages", sync_router.CSV_COLUMNS, list),
    ("/v1/ledger", ledger_router.CSV_COLUMNS, list),
    ("/v1/stock", ledger_router.STOCK_CSV_COLUMNS, flat_stock),
    ("/v1/reconciliation/transfers", reconciliation_router.TRANSFER_CSV_COLUMNS, per_product),
    (
        "/v1/reconciliation/transfers/unmatched",
        reconciliation_router.UNMATCHED_CSV_COLUMNS,
        per_product,
    ),
    ("/v1/reconciliation/counts", reconciliation_router.COUNT_CSV_COLUMNS, list),
    ("/v1/reconciliation/chunks", reconciliation_router.CHUNK_CSV_COLUMNS, list),
    ("/v1/reconciliation/completeness", reconciliation_router.COMPLETENESS_CSV_COLUMNS, list),
]


@pytest.mark.parametrize(("path", "columns", "flatten"), LISTINGS)
def test_csv_has_every_item_of_the_json_listing(
    populated: TestClient, path: str, columns: list[str], flatten: Any
) -> None:
    items = pages(populated, path, limit=2)
    assert items, path
    header, rows = csv_rows(populated, path)
    assert header == columns
    assert rows == as_rows(columns, flatten(items))
    # Every column is one the JSON answer has (flattened), so no column stays empty by a typo.
    flat = list(flatten(items))
    assert all(any(c in item for item in flat) for c in columns)


def test_nested_values_are_rows_per_line_or_json_cells(populated: TestClient) -> None:
    header, rows = csv_rows(populated, "/v1/reconciliation/transfers")
    by_product = {row[header.index("product_id")]: row for row in rows}
    assert set(by_product) == {"A", "B"}
    assert by_product["A"][header.index("shipped")] == "2"
    assert by_product["A"][header.index("received")] == "1"
    assert by_product["B"][header.index("difference")] == "-1"

    header, rows = csv_rows(populated, "/v1/reconciliation/chunks")
    [row] = rows
    assert json.loads(row[header.index("missing_chunks")]) == [2, 3]

    header, rows = csv_rows(populated, "/v1/stock", product_id="A", location_id=f.STORE)
    [row] = rows
    assert row[header.index("anchored")] == "true"
    assert row[header.index("last_count_counted")] == "6"


def test_formula_like_text_is_neutralised(populated: TestClient) -> None:
    header, rows = csv_rows(populated, "/v1/stock")
    assert "'=cmd()" in [row[header.index("product_id")] for row in rows]
    header, rows = csv_rows(populated, "/v1/reconciliation/transfers/unmatched")
    assert [row[header.index("asn_id")] for row in rows] == ["'@ASN-NEVER-SEEN"]


def test_csv_follows_filters_and_order(populated: TestClient) -> None:
    _, rows = csv_rows(populated, "/v1/events", status="quarantined")
    assert len(rows) == 1
    _, newest_first = csv_rows(populated, "/v1/events")
    _, oldest_first = csv_rows(populated, "/v1/events", order="asc")
    assert newest_first == oldest_first[::-1]
    assert [int(r[0]) for r in oldest_first] == sorted(int(r[0]) for r in oldest_first)


def test_a_large_export_is_read_in_batches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_export, "BATCH", 3)
    posted = [f.post(client, f.received(("A", 1)))["event_id"] for _ in range(10)]
    _, rows = csv_rows(client, "/v1/events", order="asc")
    assert [int(r[0]) for r in rows] == posted
    _, rows = csv_rows(client, "/v1/sync/messages")
    assert [int(r[7]) for r in rows] == posted[::-1]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/reconciliation",
        "/v1/reconciliation/erp",
        "/v1/events/1",
        "/v1/sync/messages/some-message",
    ],
)
def test_an_answer_that_is_no_listing_refuses_csv(populated: TestClient, path: str) -> None:
    response = populated.get(path, params={"format": "csv"}, headers=f.read_headers())
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("csv_unavailable")
    assert "not a listing" in problem["detail"]
    # JSON, asked for or not, is answered as always.
    assert populated.get(path, params={"format": "json"}, headers=f.read_headers()).status_code in (
        200,
        404,
        409,  # the comparison with the ERP, whose adapter here cannot read stock
    )


def test_an_unknown_format_is_a_problem(populated: TestClient) -> None:
    response = populated.get("/v1/events", params={"format": "xlsx"}, headers=f.read_headers())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
