"""Several workers, leases, crashes and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.worker import Worker, send_bound
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import PENDING, Attempt, Claim, Finished
from tests.erp_sync.conftest import (
    FakeErp,
    LoopStore,
    Reply,
    accept,
    erp_settings,
    make_worker,
    message,
    run,
)


def _require_postgres(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip("several workers share one outbox on PostgreSQL only")


class TestSeveralWorkers:
    def test_two_workers_drain_one_outbox_without_overlap(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        _require_postgres(settings)
        ids = accept(client, 30)
        erp.default = Reply(200, delay=0.03)  # long enough for claims to interleave
        config = erp_settings(settings, erp.url, erp_concurrency=3)
        first, second = make_worker(config, db), make_worker(config, db)

        async def both() -> None:
            await asyncio.gather(first.drain(20), second.drain(20))

        run(both())

        assert erp.overlaps == []
        assert sorted(erp.keys()) == sorted(ids)  # each delivered exactly once
        items = [message(client, i) for i in ids]
        assert {i["status"] for i in items} == {"delivered"}
        workers = {i["attempt_log"][0]["worker"] for i in items}
        assert workers == {first.name, second.name}

    def test_skip_locked_claims_disjoint_rows_without_waiting(
        self, client: TestClient, settings: Settings, db: Database
    ) -> None:
        _require_postgres(settings)
        ids = accept(client, 4)
        now = utcnow()
        lease = now + timedelta(seconds=30)
        with db.transaction() as held:
            # Another claimer's transaction, not yet committed, holds two rows locked: a claim
            # skips them instead of blocking on them.
            mine = held.execute(
                text("SELECT id FROM outbox_message ORDER BY id LIMIT 2 FOR UPDATE")
            ).scalars()
            locked = set(mine)
            started = time.monotonic()
            theirs = run(LoopStore(db).claim_due("b", 4, now, lease))
            assert time.monotonic() - started < 2
        assert locked.isdisjoint(c.id for c in theirs)
        assert locked | {c.id for c in theirs} == set(ids)


class TestLeases:
    def test_claims_of_a_killed_worker_are_recovered_after_the_lease(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        now = utcnow()
        store = LoopStore(db)
        # A worker claims the message and dies (kill -9) before recording anything.
        [claim] = run(store.claim_due("dead", 10, now, now + timedelta(seconds=0.5)))
        survivor = make_worker(erp_settings(settings, erp.url), db)

        assert run(survivor.run_once()) == 0  # still leased: not touched
        time.sleep(0.6)
        assert run(survivor.run_once()) == 1

        assert erp.keys() == [message_id]
        assert message(client, message_id)["status"] == "delivered"
        # The dead worker's late result cannot overwrite the survivor's.
        late = Attempt(utcnow(), 5, "retry", 503, "HTTP 503")
        kept = run(store.finish_many([Finished(claim, late, PENDING, 1, utcnow())], "dead"))
        assert not kept
        assert message(client, message_id)["status"] == "delivered"

    def test_stop_releases_deliveries_that_do_not_finish_in_time(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        erp.default = Reply(200, delay=1.5)
        worker = make_worker(
            erp_settings(settings, erp.url, erp_timeout_seconds=5),
            db,
            shutdown_grace_seconds=0.1,
        )
        run(worker.run_for(0.2))

        item = message(client, message_id)
        assert item["status"] == "pending"
        assert item["claimed_by"] is None  # released: another worker may take it at once
        assert item["attempts"] == 0
        erp.default = Reply(200)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        assert message(client, message_id)["status"] == "delivered"


class TestQueuedLease:
    def test_send_bound_leaves_room_for_the_request_and_the_record(self) -> None:
        assert send_bound(30, 10) == 20  # the default lease: 2 x timeout + 10
        assert send_bound(5, 2) == 3.5
        assert send_bound(5, 5) == 2.5  # no room beyond the request bound (tests only)

    def test_a_claim_near_the_end_of_its_lease_is_not_sent(self, settings: Settings) -> None:
        worker = Worker(erp_settings(settings, "http://127.0.0.1:9/erp"), None, lease_seconds=5)  # type: ignore[arg-type]
        now = utcnow()

        def claim(name: str, seconds_left: float) -> Claim:
            return Claim(name, "{}", 0, now, now + timedelta(seconds=seconds_left))

        worker._queue.extend([(claim("late", 3.0), False), (claim("fresh", 4.9), False)])
        item = worker._next()
        assert item is not None
        assert item[0].id == "fresh"
        assert not worker._queue


class TestWorkerProcess:
    def test_sigterm_finishes_the_delivery_in_flight(
        self,
        client: TestClient,
        settings: Settings,
        erp: FakeErp,
        tmp_path: Path,
    ) -> None:
        [message_id] = accept(client)
        erp.default = Reply(200, delay=1.0)
        env = {
            **os.environ,
            "INVSYNC_DATABASE_URL": settings.database_url,
            "INVSYNC_ERP_URL": erp.url,
            "INVSYNC_ERP_TIMEOUT_SECONDS": "5",
            "INVSYNC_LOG_FORMAT": "json",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "inventory_sync", "worker"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            erp.wait_for(lambda: bool(erp.in_flight), timeout=15)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, stderr.decode()
        assert b"erp_sync.worker_stopped" in stderr
        item = message(client, message_id)
        assert item["status"] == "delivered"
        assert item["claimed_by"] is None
