"""Data lifecycle: the ledger is append-only and stored events are never rewritten.

A scan of the product's source for statements that could rewrite history, and a behavioural
check that duplicates, conflicts and replays only ever add movements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.postgres import PostgresStore
from inventory_sync.storage.tables import inbound_event, ledger_movement
from tests import factories as f
from tests.ops.test_replay import quarantine

SOURCE = Path(__file__).resolve().parents[2] / "src" / "inventory_sync"
APPEND_ONLY = ("ledger_movement", "count_observation", "shipment_line")


def source_files() -> list[tuple[Path, str]]:
    files = [(p, p.read_text()) for p in sorted(SOURCE.rglob("*.py"))]
    assert len(files) > 30
    return files


def rewrites(text: str, table: str) -> list[str]:
    """Statements in `text` that update or delete rows of `table` (Core or SQL text)."""
    patterns = [
        rf"\b(update|delete)\(\s*(\w+\.)?{table}\b",
        rf"\b{table}\s*\.\s*(update|delete)\(",
        rf"(?i)\bupdate\s+{table}\b",
        rf"(?i)\bdelete\s+from\s+{table}\b",
        rf"(?i)\btruncate\b[^\n]*\b{table}\b",
    ]
    return [m.group(0) for p in patterns for m in re.finditer(p, text)]


STORES = {"storage/postgres.py", "storage/sqlite.py"}


def test_the_scan_finds_what_it_looks_for() -> None:
    assert rewrites("conn.execute(update(ledger_movement).values(q=1))", "ledger_movement")
    assert rewrites("ledger_movement.delete().where(x)", "ledger_movement")
    assert rewrites('text("DELETE FROM shipment_line")', "shipment_line")
    assert not rewrites("insert(ledger_movement)", "ledger_movement")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("ledger_movement", STORES),
        ("count_observation", STORES),
        ("shipment_line", STORES),
        ("outbox_message", STORES),
    ],
)
def test_only_the_stores_write_of_an_event_adds_its_rows(table: str, expected: set[str]) -> None:
    # These tables have no foreign key to their event: the guarantee is that only the store's
    # write of an event adds them, with the event, in one statement or transaction.
    pattern = re.compile(rf"(?i)\binsert\(\s*{table}\b|\binsert\s+into\s+{table}\b")
    writers = {str(p.relative_to(SOURCE)) for p, t in source_files() if pattern.search(t)}
    assert writers == expected


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_no_code_updates_or_deletes_ledger_rows(table: str) -> None:
    found = {str(p.relative_to(SOURCE)): rewrites(t, table) for p, t in source_files()}
    assert {k: v for k, v in found.items() if v} == {}


def test_no_code_deletes_a_stored_event() -> None:
    found = {str(p.relative_to(SOURCE)): rewrites(t, "inbound_event") for p, t in source_files()}
    deletes = {k: [s for s in v if "delete" in s.lower()] for k, v in found.items()}
    assert {k: v for k, v in deletes.items() if v} == {}
    # The only update of a stored event is replay's verdict, in the stores.
    updates = {k for k, v in found.items() if v}
    assert updates <= STORES


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement any engine, or the PostgreSQL store's own driver, sends while the
    test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    fetch = PostgresStore._fetch

    async def fetching(store: PostgresStore, sql: str, args: Any) -> Any:
        seen.append(sql)
        return await fetch(store, sql, args)

    monkeypatch.setattr(PostgresStore, "_fetch", fetching)
    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def movements(db: Database) -> list[tuple[Any, ...]]:
    with db.snapshot() as conn:
        return [tuple(r) for r in conn.execute(select(ledger_movement).order_by("id")).all()]


def bodies(db: Database) -> dict[int, tuple[bytes, str | None, Any]]:
    e = inbound_event.c
    with db.snapshot() as conn:
        rows = conn.execute(select(e.id, e.raw_body, e.content_type, e.received_at)).all()
    return {r[0]: (bytes(r[1]), r[2], r[3]) for r in rows}


def test_duplicates_conflicts_and_replays_only_append(
    settings: Settings, client: TestClient, db: Database, statements: list[str]
) -> None:
    first = f.received(("A", 3), ("B", 2))
    assert f.post(client, first)["status"] == "accepted"
    assert f.post(client, f.counted(("A", 10, 3)))["status"] == "accepted"
    [held] = quarantine(settings, f.received(("C", 4)))
    before, stored = movements(db), bodies(db)

    assert f.post(client, first)["status"] == "duplicate"
    conflict = {**first, "payload": {**first["payload"], "items": f.lines(("A", 99))}}
    assert f.post(client, conflict)["status"] == "quarantined"
    for event_id in stored:
        client.post(f"/v1/events/{event_id}/replay", headers=f.admin_headers())
    replayed = client.post(f"/v1/events/{held}/replay", headers=f.admin_headers())
    assert replayed.json()["status"] == "accepted"

    after = movements(db)
    assert after[: len(before)] == before  # every earlier movement exactly as it was
    assert [m[4:7] for m in after[len(before) :]] == [("main", "C", 4)]  # the replay, appended
    assert {k: v for k, v in bodies(db).items() if k in stored} == stored
    # A replay's verdict may stand alone or head the statement that writes its effect.
    updates = [s for s in statements if re.search(r"(?is)\bupdate\s+inbound_event\b", s)]
    assert updates
    assert [s for s in updates if re.search(r"(?is)\braw_body\b\s*=", s)] == []
