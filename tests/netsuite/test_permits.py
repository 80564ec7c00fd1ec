"""Requests in flight to NetSuite across all workers: the store's permits, and worker
processes against a NetSuite that refuses more than its limit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.client import Outcome
from inventory_sync.erp_sync.netsuite import NetSuiteAdapter
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_store
from inventory_sync.storage.tables import erp_worker
from tests.erp_sync.conftest import accept, message
from tests.netsuite.conftest import FakeNetSuite, netsuite_environment, netsuite_settings


def _receipt(message_id: str) -> str:
    return json.dumps(
        {
            "id": message_id,
            "type": "inventory.receipt",
            "tenant": "acme",
            "location_id": "US-NYC-01",
            "occurred_at": "2024-05-14T09:31:55Z",
            "source": {"event_name": "inventory_transaction.items_received", "event_id": "e"},
            "references": {},
            "lines": [{"product_id": "P", "stock_location": "main", "quantity_delta": 1}],
        }
    )


class TestPermits:
    def test_a_request_left_without_an_answer_keeps_its_permit(self, settings: Settings) -> None:
        # NetSuite goes on with a request whose answer we gave up on: sending another in its
        # place would put one more in flight than the limit.
        slow = FakeNetSuite(delay=1.5, limit=1)
        slow.thread.start()
        configured = netsuite_settings(
            settings, slow.url, netsuite_concurrency=1, erp_timeout_seconds=0.4
        )

        async def scenario() -> tuple[Outcome, Outcome]:
            store = await open_store(settings.database_url, pool_size=2)
            await store.prepare()
            adapter = NetSuiteAdapter.from_settings(configured, store, pool=1)
            try:
                first = await adapter.send("m-1", _receipt("m-1"))
                second = await adapter.send("m-2", _receipt("m-2"))
                await asyncio.sleep(1.5)
                return first.outcome, second.outcome
            finally:
                await adapter.aclose()
                await store.close()

        try:
            assert asyncio.run(scenario()) == (Outcome.RETRY, Outcome.THROTTLED)
            assert (len(slow.calls), slow.max_in_flight) == (1, 1)
        finally:
            slow.server.shutdown()
            slow.server.server_close()

    def test_at_most_the_limit_are_held_and_a_lapsed_one_is_free_again(
        self, settings: Settings
    ) -> None:
        async def scenario() -> None:
            store = await open_store(settings.database_url, pool_size=4)
            await store.prepare()
            now = utcnow()
            later = now + timedelta(seconds=30)
            try:
                first = await store.take_permit(2, "a", now, later)
                second = await store.take_permit(2, "b", now, later)
                assert {first, second} == {0, 1}
                assert await store.take_permit(2, "c", now, later) is None
                assert second is not None
                await store.return_permit(second, "someone else")  # not theirs: kept
                assert await store.take_permit(2, "c", now, later) is None
                await store.return_permit(second, "b")
                assert await store.take_permit(2, "c", now, later) == second
                # Past `held_until`, a holder that never came back holds nothing.
                after = later + timedelta(seconds=1)
                assert await store.take_permit(2, "d", after, after + timedelta(seconds=30)) in (
                    0,
                    1,
                )
            finally:
                await store.close()

        asyncio.run(scenario())

    def test_many_at_once_get_no_more_than_the_limit(self, settings: Settings) -> None:
        async def scenario() -> list[int | None]:
            stores = [await open_store(settings.database_url, pool_size=4) for _ in range(3)]
            await stores[0].prepare()
            now = utcnow()
            until = now + timedelta(seconds=30)
            try:
                return list(
                    await asyncio.gather(
                        *(
                            stores[n % 3].take_permit(3, f"holder-{n}", now, until)
                            for n in range(24)
                        )
                    )
                )
            finally:
                for store in stores:
                    await store.close()

        taken = [slot for slot in asyncio.run(scenario()) if slot is not None]
        assert sorted(taken) == [0, 1, 2]


class TestWorkerProcesses:
    def test_several_workers_never_exceed_the_netsuite_concurrency(
        self, client: TestClient, settings: Settings, db: Database, tmp_path: Path
    ) -> None:
        limit = 2
        netsuite = FakeNetSuite(delay=0.2, limit=limit)
        netsuite.thread.start()
        env = {
            **os.environ,
            **netsuite_environment(netsuite.url, limit),
            "INVSYNC_DATABASE_URL": settings.database_url,
            # One request at a time per worker, three workers: more than the limit only
            # together, so only the permits they share can keep them within it. (One lane
            # also keeps each worker's claims few, so that every worker gets some.)
            "INVSYNC_ERP_CONCURRENCY": "1",
            "INVSYNC_ERP_TIMEOUT_SECONDS": "2",
            "INVSYNC_LOG_FORMAT": "json",
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "inventory_sync", "worker"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        try:
            # Every worker up before the messages come, so that all of them claim some.
            _wait_until(lambda: _delivering(db) == len(workers), 60)
            ids = accept(client, 30)
            deadline = time.monotonic() + 90
            while len(netsuite.records) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            for worker in workers:
                worker.terminate()
            errors = [worker.communicate(timeout=20)[1].decode() for worker in workers]
            netsuite.server.shutdown()
            netsuite.server.server_close()

        assert len(netsuite.records) == len(ids), errors
        assert netsuite.max_in_flight <= limit
        assert netsuite.max_in_flight == limit  # several processes at once, as many as allowed
        assert [c for c in netsuite.calls if c.answer.status != 204] == []  # none refused
        items = [message(client, i) for i in ids]
        assert {i["status"] for i in items} == {"delivered"}
        senders = {a["worker"] for i in items for a in i["attempt_log"]}
        assert len(senders) >= 2, "several worker processes delivered"


def _delivering(db: Database) -> int:
    with db.snapshot() as conn:
        query = select(func.count()).where(erp_worker.c.state == "delivering")
        return int(conn.execute(query).scalar_one())


def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
