"""`inventory-sync newstore replay` and `failures` end to end, on both backends: a local NewStore
really delivers to the real service over HTTP, and the commands compare its records with the
inbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.clock import iso, utcnow
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event
from tests import factories as f
from tests.live import live_server
from tests.newstore import fake as ns
from tests.newstore.fake import FakeNewStore

OURS = "inventory-sync"


@pytest.fixture
def service(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url + "/webhooks/newstore"


@pytest.fixture
def cli_db(runner: CliRunner, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("INVSYNC_DATABASE_URL", settings.database_url)
    return runner


@pytest.fixture
def registered(newstore: FakeNewStore, service: str) -> str:
    newstore.add_integration(
        id=OURS,
        integration_type="permanent",
        callback_parameters={"callback_url": service, "api_key": f.WEBHOOK_KEY},
        filter_conditions={"event_filter": sorted(HANDLED), "entity_filter": []},
    )
    return service


def post(service: str, body: dict[str, Any]) -> str:
    answer = httpx.post(service, json=body, headers={"Authorization": f"Bearer {f.WEBHOOK_KEY}"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def stored(db: Database) -> dict[tuple[str, int | None], str]:
    e = inbound_event
    with db.snapshot() as conn:
        rows = conn.execute(select(e.c.payload_id, e.c.chunk_number, e.c.status))
        return {(r.payload_id, r.chunk_number): r.status for r in rows}


def statuses(db: Database, payload_id: str) -> list[str]:
    e = inbound_event
    with db.snapshot() as conn:
        return list(conn.scalars(select(e.c.status).where(e.c.payload_id == payload_id)))


def later(moment: datetime, milliseconds: int) -> datetime:
    return moment + timedelta(milliseconds=milliseconds)


def pause() -> datetime:
    time.sleep(0.02)
    return utcnow()


class TestReplay:
    def test_sends_the_window_again_then_removes_itself(
        self, cli_db: CliRunner, newstore: FakeNewStore, registered: str, db: Database
    ) -> None:
        first = f.received(("A", 1))
        assert post(registered, first) == "accepted"  # the first event the inbox holds
        since = pause()
        again, new = first, f.received(("B", 2))
        unhandled = f.envelope("order.created", {"id": f.new_id()})
        outside = f.received(("C", 5))
        newstore.emit(again, later(since, 1))
        newstore.emit(new, later(since, 2))
        newstore.emit(unhandled, later(since, 3))
        newstore.emit(outside, since - timedelta(hours=1))
        until = pause()

        args = ["newstore", "replay", "--since", iso(since), "--until", iso(until)]
        result = cli_db.invoke(cli, [*args, "--poll-seconds", "0.05", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        replay_id = f"{OURS}-replay-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}"
        assert data["integration_id"] == replay_id
        assert (data["created"], data["finished"], data["removed"]) == (True, True, True)
        assert data["undelivered"] == []

        register = next(c for c in newstore.changes() if c.method == "POST")
        assert (register.path, register.body) == (
            ns.INTEGRATIONS,
            {
                "id": replay_id,
                "integration_type": "temporary",
                "starts_at": iso(since),
                "ends_at": iso(until),
                "callback_parameters": {"callback_url": registered, "api_key": f.WEBHOOK_KEY},
                "filter_conditions": {"event_filter": sorted(HANDLED), "entity_filter": []},
            },
        )
        assert [(c.method, c.path) for c in newstore.changes()][-1] == (
            "DELETE",
            f"{ns.INTEGRATIONS}/{replay_id}",
        )
        assert replay_id not in newstore.integrations
        # the duplicate changed nothing; the new one is in; the rest never came
        assert stored(db) == {
            (first["payload"]["id"], 1): "accepted",
            (new["payload"]["id"], 1): "accepted",
        }

    def test_refused_where_the_inbox_cannot_recognise_duplicates(
        self,
        cli_db: CliRunner,
        newstore: FakeNewStore,
        registered: str,
        db: Database,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        empty = cli_db.invoke(
            cli, ["newstore", "replay", "--since", "2024-05-01", "--until", "2024-05-02"]
        )
        assert empty.exit_code == 2
        assert "holds no event of this tenant" in empty.output
        post(registered, f.received(("A", 1)))
        now = utcnow()
        before = cli_db.invoke(
            cli, ["newstore", "replay", "--since", "2024-05-01", "--until", iso(now)]
        )
        assert before.exit_code == 2
        assert "the first event the inbox holds" in before.output
        # the inbox holds events from a week ago, but keeps their bodies three days
        with db.transaction() as conn:
            conn.execute(update(inbound_event).values(received_at=now - timedelta(days=7)))
        monkeypatch.setenv("INVSYNC_RETAIN_BODIES_DAYS", "3")
        purged = cli_db.invoke(
            cli,
            ["newstore", "replay", "--since", iso(now - timedelta(days=4)), "--until", iso(now)],
        )
        assert purged.exit_code == 2
        assert "INVSYNC_RETAIN_BODIES_DAYS" in purged.output
        future = iso(now + timedelta(days=1))
        ahead = cli_db.invoke(cli, ["newstore", "replay", "--since", iso(now), "--until", future])
        assert ahead.exit_code == 2
        assert "in the future" in ahead.output
        assert newstore.calls == []

    def test_kept_until_what_it_failed_to_deliver_has_reached_us(
        self, cli_db: CliRunner, newstore: FakeNewStore, registered: str, db: Database
    ) -> None:
        post(registered, f.received(("A", 1)))
        since = pause()
        lost = f.received(("D", 4))
        newstore.emit(lost, later(since, 1))
        newstore.undeliverable.add(lost["payload"]["id"])
        until = pause()
        args = ["newstore", "replay", "--since", iso(since), "--until", iso(until)]

        first = cli_db.invoke(cli, [*args, "--poll-seconds", "0.05", "--json"])
        assert first.exit_code == 1, first.output
        data = json.loads(first.stdout)
        replay_id = data["integration_id"]
        assert (data["finished"], data["removed"]) == (True, False)
        assert [(u["entity_id"], u["verdict"]) for u in data["undelivered"]] == [
            (lost["payload"]["id"], "missing")
        ]
        assert newstore.integrations[replay_id]["status"] == "stopped"

        newstore.undeliverable.clear()
        retry = cli_db.invoke(
            cli,
            ["newstore", "failures", "--integration", replay_id, "--since", iso(since), "--retry"],
        )
        assert retry.exit_code == 0, retry.output
        (publication,) = [
            a["publication_id"] for a in newstore.attempts if a["status"] == "FAILURE"
        ]
        assert newstore.changes()[-1].path == (
            f"{ns.SUBSCRIPTIONS}{replay_id}/publications/{publication}/_retry"
        )
        assert stored(db)[(lost["payload"]["id"], 1)] == "accepted"

        done = cli_db.invoke(cli, [*args, "--poll-seconds", "0.05", "--json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["created"] is False
        assert replay_id not in newstore.integrations


@pytest.mark.usefixtures("registered")
class TestFailures:
    def test_each_failed_event_is_judged_against_the_inbox_and_missing_ones_retried(
        self, cli_db: CliRunner, newstore: FakeNewStore, db: Database
    ) -> None:
        since = utcnow()
        newstore.publish(OURS, f.received(("A", 1)))  # delivered: no failure
        lost = f.received(("B", 1))
        late = f.adjustment(("C", 1))
        chunk_id = f.new_id()
        first_chunk = f.received(("E", 1), id=chunk_id, chunk_number=1, total_chunks=2)
        second_chunk = f.received(("F", 1), id=chunk_id, chunk_number=2, total_chunks=2)
        refused = f.received(("G", -1))
        newstore.publish(OURS, first_chunk)
        newstore.undeliverable |= {e["payload"]["id"] for e in (lost, late, second_chunk, refused)}
        for event in (lost, late, second_chunk, refused):
            newstore.publish(OURS, event)
        newstore.undeliverable -= {late["payload"]["id"], refused["payload"]["id"]}
        newstore.publish(OURS, late)  # NewStore's own retry got through
        newstore.publish(OURS, refused)  # got through, and was quarantined here

        listed = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--json"])
        assert listed.exit_code == 1, listed.output  # some never reached us
        verdicts = {x["entity_id"]: x["verdict"] for x in json.loads(listed.stdout)["failures"]}
        assert verdicts == {
            lost["payload"]["id"]: "missing",
            late["payload"]["id"]: "received",
            chunk_id: "partial",
            refused["payload"]["id"]: "quarantined",
        }
        (query,) = [c.query for c in newstore.api_calls() if c.path == ns.OBSERVABILITY]
        assert query == {"integration_id": OURS, "status": "failure", "from": iso(since)}

        table = cli_db.invoke(
            cli, ["newstore", "failures", "--since", iso(since)], env={"COLUMNS": "200"}
        )
        assert "missing" in table.stdout
        assert "partial" in table.stdout

        newstore.undeliverable.clear()
        failed = {
            a["entity_id"]: a["publication_id"]
            for a in newstore.attempts
            if a["status"] == "FAILURE"
        }
        retried = cli_db.invoke(
            cli, ["newstore", "failures", "--since", iso(since), "--retry", "--json"]
        )
        assert retried.exit_code == 0, retried.output
        retries = sorted(c.path for c in newstore.changes())
        assert retries == sorted(
            f"{ns.SUBSCRIPTIONS}{OURS}/publications/{failed[i]}/_retry"
            for i in (lost["payload"]["id"], chunk_id)
        )
        now = stored(db)
        assert now[(lost["payload"]["id"], 1)] == "accepted"
        assert now[(chunk_id, 2)] == "accepted"

        settled = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--json"])
        assert settled.exit_code == 0, settled.output
        assert {x["verdict"] for x in json.loads(settled.stdout)["failures"]} == {
            "received",
            "quarantined",
        }
        for output in (listed.output, retried.output, settled.output):
            assert ns.CLIENT_SECRET not in output
            assert f.WEBHOOK_KEY not in output

    def test_a_sale_is_judged_on_its_logical_timestamp(
        self, cli_db: CliRunner, newstore: FakeNewStore, db: Database
    ) -> None:
        since = utcnow()
        newstore.attempt_payloads = True
        delivered = f.sold("SKU-1", logical_timestamp=1)
        sale_id = delivered["payload"]["id"]
        lost = f.sold("SKU-2", id=sale_id, logical_timestamp=2)
        newstore.publish(OURS, delivered)
        newstore.undeliverable.add(sale_id)
        newstore.publish(OURS, lost)

        listed = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--json"])
        assert listed.exit_code == 1, listed.output
        (failure,) = json.loads(listed.stdout)["failures"]
        assert (failure["entity_id"], failure["logical_timestamp"]) == (sale_id, 2)
        assert failure["verdict"] == "missing"
        assert failure["stored"] == []

        newstore.undeliverable.clear()
        retried = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--retry"])
        assert retried.exit_code == 0, retried.output
        settled = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--json"])
        assert settled.exit_code == 0, settled.output
        (failure,) = json.loads(settled.stdout)["failures"]
        assert failure["verdict"] == "received"
        assert statuses(db, sale_id) == ["accepted", "accepted"]

    def test_a_sale_without_its_logical_timestamp_is_unknown_and_retried(
        self, cli_db: CliRunner, newstore: FakeNewStore, db: Database
    ) -> None:
        since = utcnow()
        delivered = f.sold("SKU-1", logical_timestamp=1)
        sale_id = delivered["payload"]["id"]
        newstore.publish(OURS, delivered)
        newstore.undeliverable.add(sale_id)
        newstore.publish(OURS, f.sold("SKU-2", id=sale_id, logical_timestamp=2))

        listed = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--json"])
        assert listed.exit_code == 1, listed.output
        (failure,) = json.loads(listed.stdout)["failures"]
        assert (failure["logical_timestamp"], failure["verdict"]) == (None, "unknown")

        newstore.undeliverable.clear()
        retried = cli_db.invoke(cli, ["newstore", "failures", "--since", iso(since), "--retry"])
        assert retried.exit_code == 0, retried.output
        assert newstore.changes()[-1].path.endswith("/_retry")
        assert statuses(db, sale_id) == ["accepted", "accepted"]

    def test_nothing_failed(self, cli_db: CliRunner, newstore: FakeNewStore) -> None:
        result = cli_db.invoke(cli, ["newstore", "failures", "--since", "2024-05-01"])
        assert result.exit_code == 0, result.output
        assert "no failed publications to inventory-sync" in result.stdout
        assert newstore.calls[-1].query["from"] == "2024-05-01T00:00:00Z"
