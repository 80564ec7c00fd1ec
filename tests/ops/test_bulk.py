"""Replay and retry by filter, bounded per call, through the API and the command line."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import outbox_message
from tests import factories as f
from tests.erp_sync.conftest import FakeErp, Reply, accept, erp_settings, make_worker, message, run
from tests.ops.test_replay import quarantine, rows

ADMIN = f.admin_headers()


def replay(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.post("/v1/events/replay", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def retry(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.post("/v1/sync/messages/retry", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def kill(client: TestClient, settings: Settings, db: Database, erp: FakeErp) -> list[str]:
    """Three receipts: the first two die (400 with different bodies), the third is delivered."""
    ids = accept(client, 3)
    erp.by_key[ids[0]] = Reply(400, body="Unknown SKU SKU-0")
    erp.by_key[ids[1]] = Reply(400, body="location closed")
    run(make_worker(erp_settings(settings, erp.url), db).run_once())
    assert [message(client, i)["status"] for i in ids] == ["dead", "dead", "delivered"]
    return ids


class TestReplayMatching:
    def test_bounded_calls_go_on_past_what_stays_quarantined(
        self, settings: Settings, client: TestClient, db: Database
    ) -> None:
        first, bad, last = quarantine(
            settings, f.received(("A", 1)), f.received(("B", -1)), f.received(("C", 2))
        )

        one = replay(client, max=1)
        assert one == {
            "replayed": 1,
            "failed": 0,
            "remaining": 2,
            "outcomes": {"accepted": 1},
            "next_after": first,
        }
        rest = replay(client, after=one["next_after"])
        assert rest == {
            "replayed": 1,
            "failed": 1,
            "remaining": 0,
            "outcomes": {"accepted": 1, "quarantined": 1},
            "next_after": None,
        }
        assert [rows(db, i) for i in (first, bad, last)] == [(1, 1), (0, 0), (1, 1)]
        assert f.event(client, bad)["status"] == "quarantined"
        # From the start again: only the one that stays quarantined matches.
        assert replay(client)["failed"] == 1

    def test_filters(self, settings: Settings, client: TestClient, db: Database) -> None:
        here, there = quarantine(
            settings,
            f.received(("A", 1)),
            f.received(("A", 1), id="P-THERE"),
        )
        assert replay(client, payload_id="P-NOWHERE")["outcomes"] == {}
        assert replay(client, name="return.processed")["outcomes"] == {}
        assert replay(client, since="2999-01-01T00:00:00Z")["outcomes"] == {}
        done = replay(client, payload_id="P-THERE")
        assert (done["replayed"], done["remaining"]) == (1, 0)
        assert rows(db, there) == (1, 1)
        assert rows(db, here) == (0, 0)

    def test_roles_and_bounds(self, client: TestClient) -> None:
        read = client.post("/v1/events/replay", headers=f.read_headers())
        assert read.status_code == 403
        assert client.post("/v1/events/replay").status_code == 401
        for bad in ({"max": 0}, {"max": 1001}, {"after": -1}, {"since": "yesterday"}):
            answer = client.post("/v1/events/replay", params=bad, headers=ADMIN)
            assert answer.status_code == 422, bad


class TestRetryMatching:
    def test_by_error_type_and_bound(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        sku, closed, delivered = kill(client, settings, db, erp)
        listed = client.get(
            "/v1/sync/messages", params={"status": "dead", "error": "unknown sku"}, headers=ADMIN
        ).json()["items"]
        assert [m["id"] for m in listed] == [sku]

        assert retry(client, type="inventory.count") == {
            "retried": 0,
            "failed": 0,
            "remaining": 0,
        }
        assert retry(client, error="UNKNOWN sku") == {"retried": 1, "failed": 0, "remaining": 0}
        assert message(client, sku)["status"] == "pending"
        assert message(client, closed)["status"] == "dead"
        assert retry(client, error="%") == {"retried": 0, "failed": 0, "remaining": 0}
        assert retry(client, until="2000-01-01T00:00:00Z")["retried"] == 0
        assert retry(client, max=1) == {"retried": 1, "failed": 0, "remaining": 0}
        assert message(client, closed)["status"] == "pending"
        assert message(client, delivered)["status"] == "delivered"

    def test_the_error_filter_folds_every_letter_on_both_backends(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        sku, _, _ = kill(client, settings, db, erp)
        with db.transaction() as conn:
            conn.execute(
                update(outbox_message)
                .where(outbox_message.c.id == sku)
                .values(last_error="400: Artikel Größe unbekannt: ÄRGER")
            )
        for part in ("ÄRGER", "ärger", "größe"):
            listed = client.get(
                "/v1/sync/messages", params={"status": "dead", "error": part}, headers=ADMIN
            ).json()["items"]
            assert [m["id"] for m in listed] == [sku], part

    def test_remaining_when_bounded(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        sku, closed, _ = kill(client, settings, db, erp)
        assert retry(client, max=1) == {"retried": 1, "failed": 0, "remaining": 1}
        assert [message(client, i)["status"] for i in (sku, closed)] == ["pending", "dead"]

    def test_roles_and_bounds(self, client: TestClient) -> None:
        read = client.post("/v1/sync/messages/retry", headers=f.read_headers())
        assert read.status_code == 403
        for bad in ({"max": 0}, {"max": 10_001}, {"since": "x"}, {"type": "a b"}):
            answer = client.post("/v1/sync/messages/retry", params=bad, headers=ADMIN)
            assert answer.status_code == 422, bad


class TestCommands:
    def test_replay_all_with_max(self, settings: Settings, db: Database, runner: CliRunner) -> None:
        first, second = quarantine(settings, f.received(("A", 1)), f.received(("B", 1), id="P-X"))
        result = runner.invoke(cli, ["events", "replay", "--all", "--max", "1"])
        assert result.exit_code == 0, result.output
        assert "replayed: 1 accepted; 1 not reached" in result.output
        assert [rows(db, i) for i in (first, second)] == [(1, 1), (0, 0)]
        result = runner.invoke(cli, ["events", "replay", "--all", "--payload-id", "P-X"])
        assert result.exit_code == 0, result.output
        assert f"event {second}: accepted" in result.output
        assert "replayed: 1 accepted" in result.output
        assert runner.invoke(cli, ["events", "replay", "1", "--max", "2"]).exit_code == 2

    def test_retry_all_dead_by_filter(
        self,
        settings: Settings,
        client: TestClient,
        db: Database,
        erp: FakeErp,
        runner: CliRunner,
    ) -> None:
        sku, closed, _ = kill(client, settings, db, erp)
        result = runner.invoke(cli, ["sync", "retry", "--all-dead", "--error", "closed"])
        assert result.exit_code == 0, result.output
        assert "1 dead message(s) back to pending, 0 failed, 0 remaining" in result.output
        assert [message(client, i)["status"] for i in (sku, closed)] == ["dead", "pending"]
        result = runner.invoke(cli, ["sync", "retry", "--all-dead", "--since", "2999-01-01"])
        assert "0 dead message(s) back to pending, 0 failed, 0 remaining" in result.output
        result = runner.invoke(cli, ["sync", "retry", "--all-dead", "--type", "inventory.receipt"])
        assert "1 dead message(s) back to pending" in result.output
        assert runner.invoke(cli, ["sync", "retry", sku, "--error", "x"]).exit_code == 2
