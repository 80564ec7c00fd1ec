"""`serve`'s ERP sync worker process: started with the API, restarted when it dies, and never
left running without it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.supervisor import PARENT_PID_ENV
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import inbound_event
from tests import factories as f
from tests.erp_sync.conftest import FakeErp
from tests.reliability import harness as h
from tests.reliability.scenarios import start_erp


@pytest.fixture
def erp() -> Iterator[FakeErp]:
    fake = start_erp(delay=0)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "own_sqlite" if request.param == "sqlite" else "own_postgres"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def api(database_url: str, erp: FakeErp, tmp_path: Path) -> Iterator[h.Api]:
    """`serve` with its worker process, delivering to `erp`; stopped (SIGTERM) at the end."""
    service = h.Api(database_url, tmp_path, with_worker=True, INVSYNC_ERP_URL=erp.url)
    service.start()
    yield service
    service.stop()


def worker_pids(log: Path) -> list[int]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line["pid"] for line in lines if line.get("event") == "erp_sync.worker_process_started"]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running either.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # reaped in between
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def deliver_one(api: h.Api, erp: FakeErp) -> None:
    before = len(erp.keys())
    answer = httpx.post(
        f"{api.url}/webhooks/newstore",
        content=json.dumps(f.received(("A", 1))),
        headers={"Authorization": f"Bearer {h.WEBHOOK_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.json()["status"] == "accepted"
    erp.wait_for(lambda: len(erp.keys()) == before + 1, timeout=20)


def test_serve_delivers_through_its_worker_and_stops_it(api: h.Api, erp: FakeErp) -> None:
    deliver_one(api, erp)
    [pid] = worker_pids(api.log)
    assert running(pid)
    assert f"{PARENT_PID_ENV}={api.proc.pid}".encode() in Path(  # type: ignore[union-attr]
        f"/proc/{pid}/environ"
    ).read_bytes().replace(b"\0", b" ")
    api.stop()
    assert not running(pid)
    log = api.log.read_text()
    assert "erp_sync.worker_stopped" in log
    assert "erp_sync.parent_gone" not in log  # stopped by serve, in order


def test_a_dead_worker_is_restarted(api: h.Api, erp: FakeErp) -> None:
    h.wait_until(lambda: len(worker_pids(api.log)) == 1, 20, "worker started")
    [first] = worker_pids(api.log)
    os.kill(first, signal.SIGKILL)
    h.wait_until(lambda: len(worker_pids(api.log)) == 2, 20, "worker restarted")
    deliver_one(api, erp)
    assert "erp_sync.worker_process_exited" in api.log.read_text()


def test_a_worker_stopped_on_purpose_is_not_restarted(api: h.Api) -> None:
    h.wait_until(lambda: "erp_sync.worker_started" in api.log.read_text(), 20, "started")
    [pid] = worker_pids(api.log)
    os.kill(pid, signal.SIGTERM)  # as systemd does to every process of a unit
    h.wait_until(lambda: "erp_sync.worker_process_stopped" in api.log.read_text(), 20, "stop")
    assert api.alive()
    assert worker_pids(api.log) == [pid]


def test_the_worker_stops_when_serve_is_killed(api: h.Api) -> None:
    h.wait_until(lambda: len(worker_pids(api.log)) == 1, 20, "worker started")
    [pid] = worker_pids(api.log)
    api.kill()  # SIGKILL: serve cannot stop its worker itself
    h.wait_until(lambda: not running(pid), 20, "orphaned worker stopped")
    assert "erp_sync.parent_gone" in api.log.read_text()


def test_without_an_erp_url_no_worker_is_started(database_url: str, tmp_path: Path) -> None:
    api = h.Api(database_url, tmp_path, with_worker=True)
    api.start()
    api.stop()
    assert worker_pids(api.log) == []
    assert "INVSYNC_ERP_URL is not set" in api.log.read_text()


def test_without_an_erp_url_a_purge_schedule_starts_the_worker(
    database_url: str, tmp_path: Path
) -> None:
    # An event received four months ago, its body past retention.
    api = h.Api(database_url, tmp_path, name="before")
    api.start()
    answer = httpx.post(
        f"{api.url}/webhooks/newstore",
        content=json.dumps(f.received(("A", 1))),
        headers={"Authorization": f"Bearer {h.WEBHOOK_KEY}", "Content-Type": "application/json"},
        timeout=10,
    ).json()
    api.stop()
    e = inbound_event
    db = open_database(database_url, pool_size=1)
    try:
        with db.transaction() as conn:
            conn.execute(update(e).values(received_at=utcnow() - timedelta(days=120)))

        def purged() -> bool:
            with db.snapshot() as conn:
                found = conn.execute(
                    select(e.c.body_purged_at).where(e.c.id == answer["event_id"])
                ).scalar_one()
            return found is not None

        api = h.Api(database_url, tmp_path, with_worker=True, INVSYNC_PURGE_INTERVAL_MINUTES="60")
        api.start()
        h.wait_until(purged, 30, "the scheduled purge")
        api.stop()
    finally:
        db.dispose()
    assert len(worker_pids(api.log)) == 1
    assert "retention.purged" in api.log.read_text()
