"""A byte-identical redelivery is answered after one look at the database, without validating
the body again; the database, not the memory of the process, decides it is a duplicate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from inventory_sync.db import Database, metadata
from inventory_sync.webhooks import service
from inventory_sync.webhooks.models import inbound_event
from inventory_sync.webhooks.recent import RecentBodies, Stored
from tests import factories as f


def empty(db: Database) -> None:
    with db.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "credential":
                conn.execute(delete(table))


def count_full_path(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """From now on, record every body that is classified, i.e. takes the full path."""
    full_path: list[bytes] = []
    real = service.classify

    def counted(body: bytes, rules: service.Rules) -> service.Classified:
        full_path.append(body)
        return real(body, rules)

    monkeypatch.setattr(service, "classify", counted)
    return full_path


def test_redelivery_is_a_duplicate_without_validation(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(f.received(("A", 2), ("B", 3))).encode()
    first = f.post(client, body)
    assert first["status"] == "accepted"

    full_path = count_full_path(monkeypatch)
    again = f.post(client, body)
    assert again == {
        "status": "duplicate",
        "event_id": first["event_id"],
        "detail": f"already stored as event {first['event_id']}",
    }
    assert full_path == []
    assert len(f.ledger(client)) == 2
    assert len(f.events(client)) == 1

    # The same content in other bytes is not remembered: it takes the full path, same answer.
    assert f.post(client, json.dumps(json.loads(body), indent=1)) == again
    assert len(full_path) == 1


@pytest.mark.parametrize(
    "body",
    [f.envelope("order.created", {"id": "o-1"}), f.received(("A", 1), processed_at="never")],
    ids=["ignored", "quarantined"],
)
def test_other_stored_outcomes_are_answered_the_same_way(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> None:
    content = json.dumps(body).encode()
    first = f.post(client, content)
    assert first["status"] in ("ignored", "quarantined")
    full_path = count_full_path(monkeypatch)
    assert f.post(client, content) == {
        "status": "duplicate",
        "event_id": first["event_id"],
        "detail": f"already stored as event {first['event_id']}",
    }
    assert full_path == []


def test_an_emptied_database_stores_the_redelivery_again(client: TestClient, db: Database) -> None:
    body = json.dumps(f.received(("A", 4))).encode()
    assert f.post(client, body)["status"] == "accepted"
    empty(db)
    answer = f.post(client, body)
    assert answer["status"] == "accepted"
    assert [row["quantity"] for row in f.ledger(client)] == [4]


def test_a_slot_now_holding_other_content_is_judged_by_the_full_path(
    client: TestClient, db: Database
) -> None:
    payload_id = f.new_id()
    body = json.dumps(f.received(("A", 4), id=payload_id)).encode()
    f.post(client, body)
    # The slot's holder now has other content, as after a restore from another source.
    with db.transaction() as conn:
        conn.execute(update(inbound_event).values(content_hash="0" * 64))
    answer = f.post(client, body)
    assert answer["status"] == "quarantined"
    assert "different content" in answer["detail"]


def test_capacity_drops_the_oldest_first() -> None:
    seen = RecentBodies(capacity=2)
    for n in range(3):
        seen.remember(bytes([n]), Stored(f"slot-{n}", "hash", None))
    assert len(seen) == 2
    assert seen.get(bytes([0])) is None
    assert seen.get(bytes([2])) == Stored("slot-2", "hash", None)


def test_an_entry_keeps_only_a_handled_event_name() -> None:
    rules = service.Rules()
    handled = service.classify(json.dumps(f.received(("A", 1))).encode(), rules)
    unknown = service.classify(json.dumps(f.envelope("x" * 100_000, {"id": "1"})).encode(), rules)
    assert (stored := service.stored_as(handled)) is not None
    assert stored.name == "inventory_transaction.items_received"
    assert (stored := service.stored_as(unknown)) is not None
    assert stored.name is None
