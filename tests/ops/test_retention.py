"""Retention: `inventory-sync purge` deletes old delivered messages and empties old bodies, in
batches, never the ledger or a quarantined body; the worker can run it on a schedule."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import housekeeping
from inventory_sync.settings import Settings
from inventory_sync.storage import retention
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import (
    inbound_event,
    ledger_movement,
    outbox_message,
    sync_attempt,
)
from inventory_sync.views import outbox as outbox_view
from tests import factories as f
from tests.ops.test_dismiss import dismiss
from tests.ops.test_replay import quarantine

OLD = timedelta(days=120)


def age(db: Database, event_ids: list[int], by: timedelta) -> None:
    e = inbound_event
    with db.transaction() as conn:
        conn.execute(update(e).where(e.c.id.in_(event_ids)).values(received_at=utcnow() - by))


def deliver(db: Database, event_id: int, ago: timedelta, status: str = "delivered") -> str:
    """Mark an event's message delivered (or dead) `ago`, after one retry and one last try."""
    m = outbox_message
    at = utcnow() - ago
    with db.transaction() as conn:
        message_id = conn.execute(select(m.c.id).where(m.c.event_id == event_id)).scalar_one()
        conn.execute(
            update(m)
            .where(m.c.id == message_id)
            .values(status=status, delivered_at=at if status == "delivered" else None)
        )
        conn.execute(
            insert(sync_attempt),
            [
                {"message_id": message_id, "attempted_at": at, "duration_ms": 5, "outcome": o}
                for o in ("retry", status)
            ],
        )
    return str(message_id)


def counts(db: Database) -> dict[str, int]:
    with db.snapshot() as conn:
        return {
            "messages": conn.execute(select(func.count()).select_from(outbox_message)).scalar_one(),
            "attempts": conn.execute(select(func.count()).select_from(sync_attempt)).scalar_one(),
            "movements": conn.execute(
                select(func.count()).select_from(ledger_movement)
            ).scalar_one(),
        }


@pytest.fixture
def history(client: TestClient, settings: Settings, db: Database) -> dict[str, Any]:
    """Four months of history: what retention may forget, and what it must keep."""
    old = [f.post(client, f.received(("A", n + 1)))["event_id"] for n in range(3)]
    recent = f.post(client, f.received(("B", 1)))["event_id"]
    parked, dropped, dropped_lately = quarantine(
        settings, f.received(("C", 1)), f.received(("D", 1)), f.received(("E", 1))
    )
    age(db, [*old, parked, dropped, dropped_lately], OLD)
    assert dismiss(client, dropped).status_code == 200
    assert dismiss(client, dropped_lately).status_code == 200
    e = inbound_event
    with db.transaction() as conn:
        conn.execute(update(e).where(e.c.id == dropped).values(dismissed_at=utcnow() - OLD))
    return {
        "old": old,
        "recent": recent,
        "parked": parked,
        "dropped": dropped,
        "dropped_lately": dropped_lately,
        "purged_messages": [deliver(db, old[0], OLD), deliver(db, old[1], OLD)],
        "kept_messages": [
            deliver(db, old[2], OLD, status="dead"),
            deliver(db, recent, timedelta(days=1)),
        ],
    }


def purge(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["purge", "--json", *args])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


class TestPurge:
    def test_dry_run_then_purge_in_batches(
        self, client: TestClient, db: Database, history: dict[str, Any], runner: CliRunner
    ) -> None:
        before = counts(db)
        stock = f.stock(client)
        with db.snapshot() as conn:
            deliveries = outbox_view.attempts_by_outcome(conn)
        expected = {"messages": 2, "attempts": 4, "bodies": 4}

        planned = purge(runner, "--dry-run")
        assert planned["dry_run"] is True
        assert {k: planned[k] for k in expected} == expected
        assert planned["body_bytes"] > 0
        assert counts(db) == before

        done = purge(runner, "--batch-size", "1")
        assert done == {**planned, "dry_run": False}
        assert counts(db) == {**before, "messages": before["messages"] - 2, "attempts": 4}
        # The ledger, and so every stock position, is untouched.
        assert f.stock(client) == stock
        # The delivery totals of /metrics count what was purged.
        with db.snapshot() as conn:
            assert outbox_view.attempts_by_outcome(conn) == deliveries

        for message_id in history["purged_messages"]:
            gone = client.get(f"/v1/sync/messages/{message_id}", headers=f.read_headers())
            assert gone.status_code == 404
        for message_id in history["kept_messages"]:
            kept = client.get(f"/v1/sync/messages/{message_id}", headers=f.read_headers())
            assert kept.status_code == 200
            assert len(kept.json()["attempt_log"]) == 2

        # Nothing is left to purge.
        assert purge(runner) == {
            "dry_run": False,
            "messages": 0,
            "attempts": 0,
            "bodies": 0,
            "body_bytes": 0,
        }

    @pytest.mark.usefixtures("history")
    def test_a_purge_asked_to_stop_stops_between_batches(
        self, settings: Settings, db: Database
    ) -> None:
        policy = retention.Policy.from_settings(settings)
        asked: list[bool] = []

        def stopping() -> bool:  # yes from the second time it is asked
            asked.append(True)
            return len(asked) > 1

        first = retention.purge(db, policy, utcnow(), 1, stopping)
        assert (first.messages, first.bodies) == (1, 0)
        rest = retention.purge(db, policy, utcnow(), 1)
        assert (rest.messages, rest.bodies) == (1, 4)

    def test_bodies_go_their_events_stay(
        self, client: TestClient, history: dict[str, Any], runner: CliRunner
    ) -> None:
        purge(runner)
        for event_id in (*history["old"], history["dropped"]):
            shown = f.event(client, event_id)
            assert shown["raw_body_kept"] is False
            assert shown["raw_body"] is None
            assert shown["body_purged_at"] is not None
            assert shown["status"] in ("accepted", "dismissed")
            raw = f.raw(client, event_id)
            assert raw.status_code == 404
            assert "purged" in raw.json()["detail"]
        assert len(f.event(client, history["old"][0])["movements"]) == 1
        # Recent bodies, a recently dismissed one and every quarantined one are kept.
        for event_id in (history["recent"], history["dropped_lately"], history["parked"]):
            shown = f.event(client, event_id)
            assert shown["raw_body_kept"] is True
            assert shown["body_purged_at"] is None
            assert f.raw(client, event_id).status_code == 200
        # A quarantined event keeps what replay needs.
        replayed = client.post(f"/v1/events/{history['parked']}/replay", headers=f.admin_headers())
        assert replayed.json()["status"] == "accepted"

    def test_a_redelivery_after_the_purge_is_still_a_duplicate(
        self, client: TestClient, db: Database, runner: CliRunner
    ) -> None:
        body = f.received(("A", 1))
        event_id = f.post(client, body)["event_id"]
        age(db, [event_id], OLD)
        purge(runner)
        assert f.post(client, body)["status"] == "duplicate"
        assert len(f.ledger(client)) == 1

    def test_the_same_payload_in_other_bytes_after_the_purge_is_a_duplicate(
        self, client: TestClient, db: Database, runner: CliRunner
    ) -> None:
        # NewStore's replays and its export files carry an event's payload in other bytes.
        body = f.received(("A", 1), ("B", 2))
        event_id = f.post(client, body)["event_id"]
        age(db, [event_id], OLD)
        assert purge(runner)["bodies"] == 1
        replayed = {**body, "published_at": "2030-01-01T00:00:00Z"}
        assert f.post(client, replayed) == {
            "status": "duplicate",
            "event_id": event_id,
            "detail": f"already stored as event {event_id}",
        }
        assert f.post(client, json.dumps(body, indent=2))["status"] == "duplicate"
        # Other content under the same key is still a conflict.
        changed = {**body, "payload": {**body["payload"], "items": f.lines(("A", 5))}}
        conflict = f.post(client, changed)
        assert conflict["status"] == "quarantined"
        assert f"already used by event {event_id}" in conflict["detail"]
        assert len(f.ledger(client)) == 2

    def test_bodies_larger_than_a_read_are_hashed_a_few_at_a_time(
        self, client: TestClient, db: Database, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(retention, "READ_BYTES", 300)  # one or two bodies a read
        bodies = [f.received(("A", n + 1)) for n in range(5)]
        ids = [f.post(client, body)["event_id"] for body in bodies]
        age(db, ids, OLD)
        assert purge(runner)["bodies"] == 5
        for event_id, body in zip(ids, bodies, strict=True):
            again = f.post(client, {**body, "published_at": "2030-01-01T00:00:00Z"})
            assert (again["status"], again["event_id"]) == ("duplicate", event_id)

    def test_the_table_names_the_retention(self, runner: CliRunner) -> None:
        result = runner.invoke(cli, ["purge", "--dry-run"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        assert "would purge (dry run)" in result.output
        assert "older than 30 days" in result.output
        assert "older than 90 days" in result.output

    @pytest.mark.usefixtures("history")
    def test_retention_follows_the_settings(
        self, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INVSYNC_RETAIN_DELIVERED_DAYS", "365")
        monkeypatch.setenv("INVSYNC_RETAIN_BODIES_DAYS", "365")
        assert purge(runner)["messages"] == 0
        monkeypatch.setenv("INVSYNC_RETAIN_DELIVERED_DAYS", "1")
        assert purge(runner)["messages"] == 3
        bad = runner.invoke(cli, ["purge"], env={"INVSYNC_RETAIN_BODIES_DAYS": "0"})
        assert bad.exit_code == 2
        assert "INVSYNC_RETAIN_BODIES_DAYS" in bad.output


@pytest.mark.postgres_only
def test_two_purges_at_once_share_the_work(
    client: TestClient, settings: Settings, db: Database
) -> None:
    if settings.is_sqlite:
        pytest.skip("SKIP LOCKED: concurrent purges are PostgreSQL's")
    ids = [f.post(client, f.received(("A", 1)))["event_id"] for _ in range(40)]
    for event_id in ids:
        deliver(db, event_id, OLD)
    age(db, ids, OLD)
    policy = retention.Policy(delivered_days=30, bodies_days=90)
    results: list[retention.Purged] = []

    def run() -> None:
        results.append(retention.purge(db, policy, utcnow(), batch=3))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.messages for r in results) == 40
    assert sum(r.bodies for r in results) == 40
    with db.snapshot() as conn:
        # Each attempt tallied once, whichever purge deleted it.
        assert outbox_view.attempts_by_outcome(conn) == {"retry": 40, "delivered": 40}


def test_the_worker_purges_on_a_schedule(
    client: TestClient, settings: Settings, db: Database
) -> None:
    event_id = f.post(client, f.received(("A", 1)))["event_id"]
    age(db, [event_id], OLD)
    scheduled = settings.model_copy(update={"purge_interval_minutes": 1})

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(housekeeping.purge_periodically(db, scheduled, stop))
        for _ in range(100):
            if f.event(client, event_id)["body_purged_at"] is not None:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert f.event(client, event_id)["body_purged_at"] is not None


def test_no_schedule_by_default(settings: Settings, db: Database) -> None:
    assert settings.purge_interval_minutes == 0
    # Returns at once: nothing to wait for.
    asyncio.run(asyncio.wait_for(housekeeping.purge_periodically(db, settings, asyncio.Event()), 1))
