"""The `sync` commands."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.erp_sync import worker
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests.erp_sync.conftest import (
    FakeErp,
    Reply,
    accept,
    erp_settings,
    make_worker,
    message,
    run,
)


class TestSyncCommands:
    @pytest.fixture
    def env(self, settings: Settings) -> dict[str, str]:
        return {"INVSYNC_DATABASE_URL": settings.database_url}

    def test_list_status_and_retry(
        self,
        client: TestClient,
        settings: Settings,
        db: Database,
        erp: FakeErp,
        env: dict[str, str],
    ) -> None:
        delivered, dead = accept(client, 2)
        erp.by_key[dead] = Reply(404, body="no such store")
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        runner = CliRunner()

        listed = runner.invoke(cli, ["sync", "list", "--status", "dead"], env=env)
        assert listed.exit_code == 0, listed.output
        assert dead[:8] in listed.output
        assert delivered[:8] not in listed.output

        status = runner.invoke(cli, ["sync", "status", "--json"], env=env)
        backlog = json.loads(status.stdout)
        assert (backlog["pending"], backlog["delivered"], backlog["dead"]) == (0, 1, 1)
        table = runner.invoke(cli, ["sync", "status"], env=env)
        assert table.exit_code == 0, table.output
        assert "delivered" in table.output

        again = runner.invoke(cli, ["sync", "retry", delivered], env=env)
        assert again.exit_code == 1
        retried = runner.invoke(cli, ["sync", "retry", dead], env=env)
        assert retried.exit_code == 0, retried.output
        assert message(client, dead)["status"] == "pending"

        erp.by_key[dead] = Reply(400)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        bulk = runner.invoke(cli, ["sync", "retry", "--all-dead"], env=env)
        assert "1 dead message(s) back to pending" in bulk.output
        assert runner.invoke(cli, ["sync", "retry"], env=env).exit_code != 0
        assert runner.invoke(cli, ["sync", "list", "--status", "lost"], env=env).exit_code != 0


def test_the_worker_runs_on_uvloop() -> None:
    # Measured cheaper per delivered document than asyncio's own loop (docs/performance.md).
    loops: list[str] = []

    async def main() -> None:
        loops.append(type(asyncio.get_running_loop()).__module__)

    worker._run(main())
    assert loops == ["uvloop"]
