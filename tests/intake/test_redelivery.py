"""A byte-identical redelivery is answered after one look at the database, without validating
the body again; the database, not the memory of the process, decides it is a duplicate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from inventory_sync.intake import service
from inventory_sync.intake.classify import Classified, Rules, sha256
from inventory_sync.intake.recent import RecentBodies, Stored
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event, metadata
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

    def counted(body: bytes, rules: Rules, content_hash: str) -> Classified:
        full_path.append(body)
        return real(body, rules, content_hash)

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
    other = json.dumps(f.received(("A", 5), id=payload_id)).encode()
    with db.transaction() as conn:
        conn.execute(update(inbound_event).values(raw_body=other, content_hash=sha256(other)))
    answer = f.post(client, body)
    assert answer["status"] == "quarantined"
    assert "different content" in answer["detail"]


def test_capacity_drops_the_oldest_first() -> None:
    seen = RecentBodies(capacity=2)
    for n in range(3):
        seen.remember(f"hash-{n}", Stored(f"slot-{n}", None))
    assert len(seen) == 2
    assert seen.get("hash-0") is None
    assert seen.get("hash-2") == Stored("slot-2", None)


def test_an_entry_keeps_only_a_handled_event_name(client: TestClient) -> None:
    f.post(client, f.received(("A", 1)))
    f.post(client, f.envelope("x" * 1000, {"id": "1"}))
    recent: RecentBodies = client.app.state.recent_bodies  # type: ignore[attr-defined]
    names = [recent.get(h).name for h in list(recent._entries)]  # type: ignore[union-attr]
    assert names == ["inventory_transaction.items_received", None]
