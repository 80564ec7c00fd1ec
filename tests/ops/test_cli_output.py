"""The command line's one output style: tables for people, `--json` on every command that prints
data; `events list`, `events show`, `events dismiss`; `sync list` newest first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.settings import Settings
from tests import factories as f
from tests.ops.test_replay import quarantine

ANSI = "\x1b["


def invoke(runner: CliRunner, *args: str) -> Any:
    result = runner.invoke(cli, list(args), env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert ANSI not in result.output  # no terminal here: no colour codes
    return result


def as_json(runner: CliRunner, *args: str) -> Any:
    return json.loads(invoke(runner, *args, "--json").stdout)


@pytest.fixture
def stored(client: TestClient, settings: Settings) -> dict[str, int]:
    accepted = f.post(client, f.received(("A", 3), ("B", 1)))["event_id"]
    adjusted = f.post(client, f.adjustment(("A", 1)))["event_id"]
    [parked] = quarantine(settings, f.handover(("A", 1)))
    return {"accepted": accepted, "adjusted": adjusted, "parked": parked}


class TestEventsList:
    def test_newest_first_as_table_and_json(
        self, client: TestClient, stored: dict[str, int], runner: CliRunner
    ) -> None:
        listed = as_json(runner, "events", "list")
        newest_first = [stored["parked"], stored["adjusted"], stored["accepted"]]
        assert [e["id"] for e in listed] == newest_first
        # The same items as the REST API's.
        assert listed == f.events(client)
        oldest = as_json(runner, "events", "list", "--order", "asc", "--limit", "2")
        assert [e["id"] for e in oldest] == [stored["accepted"], stored["adjusted"]]
        parked = as_json(runner, "events", "list", "--status", "quarantined")
        assert [e["id"] for e in parked] == [stored["parked"]]

        table = invoke(runner, "events", "list").stdout
        lines = [line for line in table.splitlines() if "inventory_transaction" in line]
        assert [int(line.split()[1]) for line in lines] == newest_first
        assert "quarantined" in table

    def test_bad_options_exit_2(self, runner: CliRunner) -> None:
        for args in (["--status", "lost"], ["--since", "yesterday"], ["--limit", "0"]):
            assert runner.invoke(cli, ["events", "list", *args]).exit_code == 2


class TestEventsShow:
    def test_one_event_as_the_api_shows_it(
        self, client: TestClient, stored: dict[str, int], runner: CliRunner
    ) -> None:
        event_id = stored["accepted"]
        assert as_json(runner, "events", "show", str(event_id)) == f.event(client, event_id)
        table = invoke(runner, "events", "show", str(event_id)).stdout
        for text in ("accepted", "ledger movements (2)", "receipt", "ERP message", "raw body:"):
            assert text in table
        assert '"items"' in table  # the raw body, as text

    def test_an_unknown_event_exits_1(self, runner: CliRunner) -> None:
        result = runner.invoke(cli, ["events", "show", "999999"])
        assert result.exit_code == 1
        assert "no event 999999" in result.output


class TestEventsDismiss:
    def test_one_then_replay_refuses_it(
        self, client: TestClient, stored: dict[str, int], runner: CliRunner
    ) -> None:
        parked = str(stored["parked"])
        answer = as_json(runner, "events", "dismiss", parked, "--reason", "junk", "--by", "ops")
        assert answer == {"dismissed": 1}
        shown = f.event(client, stored["parked"])
        assert shown["status"] == "dismissed"
        assert shown["dismiss_reason"] == "junk"
        assert shown["dismissed_by"] == "ops (command line)"

        replayed = runner.invoke(cli, ["events", "replay", parked])
        assert replayed.exit_code == 1
        assert "dismissed" in replayed.output
        # Dismissing again changes nothing and is no failure; an accepted event is.
        again = runner.invoke(cli, ["events", "dismiss", parked, "--reason", "other"])
        assert again.exit_code == 0, again.output
        assert f.event(client, stored["parked"])["dismiss_reason"] == "junk"
        accepted = runner.invoke(
            cli, ["events", "dismiss", str(stored["accepted"]), "--reason", "x"]
        )
        assert accepted.exit_code == 1
        assert "accepted, not quarantined" in accepted.output

    def test_all_by_filter(self, client: TestClient, settings: Settings, runner: CliRunner) -> None:
        receipts = quarantine(settings, f.received(("A", 1)), f.received(("B", 1)))
        [handover] = quarantine(settings, f.handover(("A", 1)))
        result = invoke(
            runner,
            "events",
            "dismiss",
            "--all",
            "--name",
            "inventory_transaction.items_received",
            "--reason",
            "tenant mix-up",
        )
        assert "dismissed: 2" in result.stdout
        assert sorted(e["id"] for e in f.events(client, status="dismissed")) == receipts
        assert [e["id"] for e in f.events(client, status="quarantined")] == [handover]

    @pytest.mark.parametrize(
        "args",
        [
            ["1"],  # no reason
            ["1", "--reason", " "],
            ["--reason", "x"],  # neither an id nor --all
            ["1", "--all", "--reason", "x"],
            ["1", "--name", "n", "--reason", "x"],
        ],
    )
    def test_bad_use_exits_2(self, runner: CliRunner, args: list[str]) -> None:
        assert runner.invoke(cli, ["events", "dismiss", *args]).exit_code == 2


class TestJsonEverywhere:
    def test_sync_list_newest_first(self, stored: dict[str, int], runner: CliRunner) -> None:
        listed = as_json(runner, "sync", "list")
        assert [m["event_id"] for m in listed] == [stored["adjusted"], stored["accepted"]]
        oldest = as_json(runner, "sync", "list", "--order", "asc")
        assert [m["event_id"] for m in oldest] == [stored["accepted"], stored["adjusted"]]
        table = invoke(runner, "sync", "list").stdout
        assert listed[0]["id"] in table  # in full, never folded

    @pytest.mark.usefixtures("stored")
    def test_status_and_backlog(self, runner: CliRunner) -> None:
        overview = as_json(runner, "status")
        assert overview["events"] == {"accepted": 2, "quarantined": 1}
        assert overview["sync"]["pending"] == 2
        backlog = as_json(runner, "sync", "status")
        assert backlog["pending"] == 2
        assert backlog["dead"] == 0

    def test_db_current(self, runner: CliRunner) -> None:
        current = as_json(runner, "db", "current")
        assert current["at_head"] is True
        assert current["current"] == current["head"]

    def test_replay_and_retry(self, stored: dict[str, int], runner: CliRunner) -> None:
        replayed = runner.invoke(cli, ["events", "replay", "--all", "--json"])
        assert replayed.exit_code == 0, replayed.output
        answer = json.loads(replayed.stdout)
        assert answer["totals"] == {"accepted": 1}
        assert answer["replayed"][0]["event_id"] == stored["parked"]
        retried = as_json(runner, "sync", "retry", "--all-dead")
        assert retried == {"retried": 0, "failed": 0, "remaining": 0}

    def test_every_command_that_prints_data_takes_json(self) -> None:
        commands = {
            ("status",),
            ("db", "current"),
            ("events", "list"),
            ("events", "show"),
            ("events", "replay"),
            ("events", "dismiss"),
            ("sync", "list"),
            ("sync", "status"),
            ("sync", "retry"),
            ("purge",),
        }
        for command in commands:
            help_text = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
            assert "--json" in help_text.output, command
