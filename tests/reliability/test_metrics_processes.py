"""`/metrics` of the real `serve`: the same totals from every API process, and the ERP sync
worker's heartbeat, whichever process answers."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests import factories
from tests.reliability import harness as h


def sample(body: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def scrape(api: h.Api) -> str:
    # A new connection each time, so that uvicorn's processes take turns answering.
    with httpx.Client(timeout=10) as client:
        return client.get(f"{api.url}/metrics", headers={"Connection": "close"}).text


def test_every_api_process_answers_with_every_process_counts(
    own_postgres: str, tmp_path: Path
) -> None:
    api = h.Api(own_postgres, tmp_path)
    api.args += ["--workers", "2"]
    api.start()
    try:
        headers = {"Authorization": f"Bearer {h.WEBHOOK_KEY}", "Connection": "close"}
        for n in range(30):
            with httpx.Client(timeout=10) as client:
                answer = client.post(
                    f"{api.url}/webhooks/newstore",
                    json=factories.received((f"P{n}", 1)),
                    headers=headers,
                )
                assert answer.json()["status"] == "accepted"
        accepted = 'invsync_webhook_events_total{status="accepted"}'
        readings = {sample(scrape(api), accepted) for _ in range(12)}
        assert readings == {30.0}
        assert (
            sample(
                scrape(api),
                'invsync_stored_events{name="inventory_transaction.items_received",status="accepted"}',
            )
            == 30.0
        )
        pids = set(re.findall(r'pid="(\d+)"', scrape(api)))
        assert not pids  # one figure per metric, not one per process
    finally:
        api.stop()


def test_a_running_worker_shows_in_the_metrics(own_sqlite: str, tmp_path: Path) -> None:
    api = h.Api(own_sqlite, tmp_path, with_worker=True, INVSYNC_ERP_URL="http://127.0.0.1:9/erp")
    api.start()
    try:
        delivering = 'invsync_erp_workers{state="delivering"}'
        h.wait_until(lambda: sample(scrape(api), delivering) == 1.0, 30, "worker heartbeat")
        assert sample(scrape(api), "invsync_erp_breaker_open") == 0.0
    finally:
        api.stop()
    # Stopped on purpose, it says so last.
    api.start()
    try:
        h.wait_until(
            lambda: (sample(scrape(api), 'invsync_erp_workers{state="stopped"}') or 0) >= 1.0,
            30,
            "the first worker's last word",
        )
    finally:
        api.stop()
