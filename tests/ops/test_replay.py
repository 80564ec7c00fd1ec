"""Replay of quarantined events, through the API and the command line."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy import text as sql_text
from typer.testing import CliRunner

from inventory_sync.api.app import create_app
from inventory_sync.cli.main import cli
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.heartbeat import Heartbeat, State
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import ledger_movement, outbox_message
from tests import factories as f


def quarantine(settings: Settings, *bodies: dict[str, object]) -> list[int]:
    """Post bodies through an app that does not allow their tenant yet."""
    strict = settings.model_copy(update={"tenants": ["someone-else"]})
    with TestClient(create_app(strict)) as client:
        answers = [f.post(client, body) for body in bodies]
    assert [a["status"] for a in answers] == ["quarantined"] * len(bodies)
    return [int(a["event_id"]) for a in answers]


def rows(db: Database, event_id: int) -> tuple[int, int]:
    """(ledger movements, outbox messages) of one event."""
    with db.snapshot() as conn:
        moved = conn.execute(
            select(func.count()).where(ledger_movement.c.event_id == event_id)
        ).scalar_one()
        queued = conn.execute(
            select(func.count()).where(outbox_message.c.event_id == event_id)
        ).scalar_one()
    return int(moved), int(queued)


class TestReplayEndpoint:
    def test_replay_applies_once(
        self, settings: Settings, client: TestClient, db: Database
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 3), ("B", 1)))
        assert rows(db, event_id) == (0, 0)

        url = f"/v1/events/{event_id}/replay"
        first = client.post(url, headers=f.admin_headers())
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "accepted"
        assert rows(db, event_id) == (2, 1)

        second = client.post(url, headers=f.admin_headers())
        assert second.status_code == 200
        assert second.json()["status"] == "accepted"
        assert rows(db, event_id) == (2, 1)
        assert sum(m["quantity"] for m in f.ledger(client)) == 4
        assert f.event(client, event_id)["replayed_at"] is not None

    def test_still_invalid_stays_quarantined(self, settings: Settings, client: TestClient) -> None:
        [event_id] = quarantine(settings, f.received(("A", -1)))
        answer = client.post(f"/v1/events/{event_id}/replay", headers=f.admin_headers())
        assert answer.json()["status"] == "quarantined"
        assert f.ledger(client) == []

    def test_a_database_fault_changes_nothing(
        self,
        settings: Settings,
        client: TestClient,
        db: Database,
    ) -> None:
        """Only the database refusing the values quarantines again; a fault of the database or
        the code (here, a table that is not there) answers 503 and leaves the event as it was,
        so that `replay --all` does not rewrite every reason with it."""
        [event_id] = quarantine(settings, f.received(("A", 3)))
        before = f.event(client, event_id)
        with db.transaction() as conn:
            conn.execute(sql_text("ALTER TABLE ledger_movement RENAME TO ledger_movement_away"))
        try:
            answer = client.post(f"/v1/events/{event_id}/replay", headers=f.admin_headers())
        finally:
            with db.transaction() as conn:
                conn.execute(sql_text("ALTER TABLE ledger_movement_away RENAME TO ledger_movement"))
        assert answer.status_code == 503, answer.text
        assert f.event(client, event_id) == before
        assert rows(db, event_id) == (0, 0)

    def test_unknown_event_is_a_problem(self, client: TestClient) -> None:
        answer = client.post("/v1/events/999999/replay", headers=f.admin_headers())
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


class TestReplayCommand:
    def test_replay_all_with_filters_then_one(
        self, settings: Settings, db: Database, runner: CliRunner
    ) -> None:
        receipt, adjustment = quarantine(settings, f.received(("A", 1)), f.adjustment(("A", 1)))

        result = runner.invoke(
            cli, ["events", "replay", "--all", "--name", "inventory_transaction.items_received"]
        )
        assert result.exit_code == 0, result.output
        assert f"event {receipt}: accepted" in result.output
        assert "replayed: 1 accepted" in result.output
        assert rows(db, receipt) == (1, 1)
        assert rows(db, adjustment) == (0, 0)

        result = runner.invoke(cli, ["events", "replay", str(adjustment)])
        assert result.exit_code == 0, result.output
        assert rows(db, adjustment) == (2, 1)

        again = runner.invoke(cli, ["events", "replay", "--all"])
        assert again.exit_code == 0, again.output
        assert "nothing to replay" in again.output
        once_more = runner.invoke(cli, ["events", "replay", str(receipt)])
        assert once_more.exit_code == 0
        assert rows(db, receipt) == (1, 1)

    def test_replay_all_by_tenant_and_time(
        self, settings: Settings, db: Database, runner: CliRunner
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        later = runner.invoke(cli, ["events", "replay", "--all", "--since", "2999-01-01"])
        assert "nothing to replay" in later.output
        other = runner.invoke(cli, ["events", "replay", "--all", "--tenant", "nobody"])
        assert "nothing to replay" in other.output
        assert rows(db, event_id) == (0, 0)
        mine = runner.invoke(cli, ["events", "replay", "--all", "--tenant", f.TENANT])
        assert mine.exit_code == 0, mine.output
        assert rows(db, event_id) == (1, 1)

    def test_failures_exit_non_zero(self, settings: Settings, runner: CliRunner) -> None:
        [bad] = quarantine(settings, f.received(("A", -1)))
        assert runner.invoke(cli, ["events", "replay", str(bad)]).exit_code == 1
        assert runner.invoke(cli, ["events", "replay", "999999"]).exit_code == 1
        assert runner.invoke(cli, ["events", "replay"]).exit_code == 2
        assert runner.invoke(cli, ["events", "replay", "1", "--all"]).exit_code == 2
        assert runner.invoke(cli, ["events", "replay", "--all", "--since", "x"]).exit_code == 2


class TestStatusCommand:
    def test_status_table(self, client: TestClient, runner: CliRunner) -> None:
        f.post(client, f.received(("A", 1), ("B", 2)))
        f.post(client, f.asn(("A", 1)))
        result = runner.invoke(cli, ["status"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        for text in ("events", "accepted", "receipt", "stock positions", "in_transit", "ERP sync"):
            assert text in result.output
        assert "(none heard of)" in result.output

    def test_status_shows_the_workers_by_state(self, db: Database, runner: CliRunner) -> None:
        Heartbeat(db, "w-1").beat(State("delivering"))
        Heartbeat(db, "w-2").beat(State("idle"))
        result = runner.invoke(cli, ["status"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        workers = result.output.split("ERP sync workers", 1)[1]
        assert "delivering" in workers
        assert "idle" in workers

    def test_status_shows_completeness_per_store(
        self, client: TestClient, runner: CliRunner
    ) -> None:
        empty = runner.invoke(cli, ["status"], env={"COLUMNS": "160"})
        assert "(no store counted or with events lost)" in empty.output
        today = utcnow().isoformat()
        for store, on_record in (("US-NYC-01", 5), ("US-BOS-02", 6)):
            for at, soh in (("2024-05-20T10:00:00Z", 5), (today, on_record)):
                body = f.counted(("A", soh, soh), completed_at=at, fulfillment_location_id=store)
                assert f.post(client, body)["status"] == "accepted"
        result = runner.invoke(cli, ["status"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        table = result.output.split("completeness per store", 1)[1]
        cells = [
            [cell.strip() for cell in line.strip(" │").split("│")]
            for line in table.splitlines()
            if "US-" in line
        ]
        assert {row[0]: row[-1] for row in cells} == {"US-BOS-02": "0%", "US-NYC-01": "100%"}
