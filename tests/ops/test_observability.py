"""`/metrics`, the request id in answers and logs, and `/readyz` with a schema behind head."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text

from inventory_sync.api.app import create_app
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync.heartbeat import Heartbeat, State
from inventory_sync.observability import logs, metrics
from inventory_sync.observability.metrics import DatabaseCollector
from inventory_sync.settings import Settings
from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import outbox_message, sync_attempt
from inventory_sync.views import workers as workers_view
from tests import factories as f


class TestMetrics:
    def test_deliveries_by_outcome(self, client: TestClient, db: Database) -> None:
        f.post(client, f.received(("A", 1)))
        with db.transaction() as conn:
            message_id = conn.execute(select(outbox_message.c.id)).scalar_one()
            conn.execute(
                insert(sync_attempt),
                [
                    {
                        "message_id": message_id,
                        "attempted_at": utcnow(),
                        "duration_ms": 5,
                        "status_code": code,
                        "outcome": outcome,
                    }
                    for code, outcome in ((503, "retry"), (503, "retry"), (200, "delivered"))
                ],
            )
        body = client.get("/metrics").text
        assert 'invsync_erp_deliveries_total{outcome="retry"} 2.0' in body
        assert 'invsync_erp_deliveries_total{outcome="delivered"} 1.0' in body

    def test_metrics_need_no_token_and_show_the_figures(self, client: TestClient) -> None:
        f.post(client, f.received(("A", 3), ("B", 1)))
        f.post(client, f.adjustment(("A", 1)))
        f.post(client, f.received(("A", -1)))
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        body = response.text
        for sample in (
            'invsync_stored_events{name="inventory_transaction.items_received",'
            'status="accepted"} 1.0',
            'invsync_stored_events{name="inventory_transaction.items_received",'
            'status="quarantined"} 1.0',
            'invsync_ledger_movements_total{kind="receipt"} 2.0',
            'invsync_ledger_movements_total{kind="adjustment"} 2.0',
            'invsync_outbox_messages{status="pending"} 2.0',
            'invsync_outbox_messages{status="dead"} 0.0',
            "invsync_database_up 1.0",
        ):
            assert sample in body
        assert "invsync_outbox_oldest_pending_age_seconds " in body
        assert "# TYPE invsync_erp_deliveries_total counter" in body
        assert "invsync_webhook_seconds_bucket" in body
        # Process counters are global to the test process: only their presence is certain.
        assert 'invsync_events_total{name="inventory_transaction.adjustment_created"' in body

    def test_metrics_reveal_no_secret(self, settings: Settings, client: TestClient) -> None:
        f.post(client, f.received(("A", 1)))
        body = client.get("/metrics").text
        secrets = [k.get_secret_value() for k in settings.webhook_keys]
        secrets += [t.get_secret_value() for t in [*settings.ops_tokens, *settings.admin_tokens]]
        secrets.append(settings.database_url)
        for secret in secrets:
            assert secret not in body
        assert f.TENANT not in body

    def test_database_outage_is_not_an_error(self, client: TestClient) -> None:
        state = client.app.state  # type: ignore[attr-defined]
        working: DatabaseCollector = state.metrics_collector
        broken = open_database("postgresql://nobody@127.0.0.1:1/none", pool_size=1)
        state.metrics_collector = DatabaseCollector(broken)
        try:
            response = client.get("/metrics")
            assert response.status_code == 200
            assert "invsync_database_up 0.0" in response.text
        finally:
            state.metrics_collector = working
            broken.dispose()


@pytest.fixture
def json_logs(settings: Settings) -> Iterator[io.StringIO]:
    """The service's own JSON log configuration, at debug level, writing into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure(settings.model_copy(update={"log_level": "debug"}))
    buffer = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_metrics_without_schema_still_answer(settings: Settings, tmp_path: Path) -> None:
    empty = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'empty.db'}"})
    app = create_app(empty)
    with TestClient(app) as client:
        app.state.store.database.dispose()
        (tmp_path / "empty.db").unlink()
        (tmp_path / "empty.db").touch()  # a database file without any table
        response = client.get("/metrics")
    assert response.status_code == 200
    assert "invsync_database_up 0.0" in response.text


class TestRequestId:
    def test_given_id_is_returned(self, client: TestClient) -> None:
        response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"

    def test_missing_or_unsafe_id_is_replaced(self, client: TestClient) -> None:
        made = client.get("/healthz").headers["x-request-id"]
        assert len(made) == 32
        unsafe = client.get("/healthz", headers={"X-Request-ID": "a b\tc"})
        assert unsafe.headers["x-request-id"] not in ("a b\tc", made)

    def test_errors_carry_the_id_too(self, client: TestClient) -> None:
        response = client.get("/v1/ledger", headers={"X-Request-ID": "req-401"})
        assert response.status_code == 401
        assert response.headers["x-request-id"] == "req-401"

    def test_log_lines_carry_the_id(self, client: TestClient, json_logs: io.StringIO) -> None:
        response = client.post(
            "/webhooks/newstore",
            content=json.dumps(f.received(("A", 1))),
            headers={**f.webhook_headers(), "X-Request-ID": "trace-42"},
        )
        assert response.status_code == 200
        lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line]
        [received] = [line for line in lines if line.get("event") == "webhook.received"]
        assert received["request_id"] == "trace-42"
        assert received["status"] == "accepted"
        assert f.WEBHOOK_KEY not in json.dumps(lines)


def test_at_info_only_events_that_need_a_look_are_logged(
    client: TestClient, settings: Settings
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure(settings.model_copy(update={"log_level": "info"}))
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        f.post(client, f.received(("A", 1)))
        f.post(client, f.received(("A", -1)))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
    received = [line for line in lines if line.get("event") == "webhook.received"]
    assert [(line["status"], line["level"]) for line in received] == [("quarantined", "warning")]


class TestReadiness:
    def test_schema_behind_head_is_not_ready(self, client: TestClient, db: Database) -> None:
        assert client.get("/readyz").status_code == 200
        with db.transaction() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        try:
            response = client.get("/readyz")
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "not_ready"
            assert "behind head" in body["reason"]
            assert response.headers["retry-after"]
        finally:
            with db.transaction() as conn:
                conn.execute(
                    text("UPDATE alembic_version SET version_num = :head"),
                    {"head": migrate.head()},
                )
        assert client.get("/readyz").status_code == 200


class TestWorkers:
    def test_heartbeats_give_each_worker_its_state_and_a_silent_one_is_lost(
        self, client: TestClient, db: Database
    ) -> None:
        now = utcnow()
        delivering = Heartbeat(db, "w-delivering")
        delivering.beat(State("delivering", breaker_open=True, last_error="ERP answered 503"), now)
        Heartbeat(db, "w-idle").beat(State("idle", last_error="INVSYNC_ERP_URL is not set"), now)
        Heartbeat(db, "w-gone").beat(State("delivering"), now - timedelta(minutes=5))
        Heartbeat(db, "w-done").beat(State("stopped"), now - timedelta(minutes=5))
        delivering.beat(State("delivering", breaker_open=True, last_error="ERP answered 503"), now)
        with db.snapshot() as conn:
            found = {w["name"]: w for w in workers_view.workers(conn, now)}
        assert {name: w["state"] for name, w in found.items()} == {
            "w-delivering": "delivering",
            "w-idle": "idle",
            "w-gone": "lost",
            "w-done": "stopped",
        }
        assert found["w-delivering"]["last_error"] == "ERP answered 503"
        body = client.get("/metrics").text
        for sample in (
            'invsync_erp_workers{state="delivering"} 1.0',
            'invsync_erp_workers{state="idle"} 1.0',
            'invsync_erp_workers{state="lost"} 1.0',
            'invsync_erp_workers{state="stopped"} 1.0',
            'invsync_erp_workers{state="misconfigured"} 0.0',
            "invsync_erp_breaker_open 1.0",
        ):
            assert sample in body

    def test_a_worker_gone_a_day_is_forgotten(self, db: Database) -> None:
        now = utcnow()
        Heartbeat(db, "w-old").beat(State("stopped"), now - timedelta(days=2))
        Heartbeat(db, "w-new").beat(State("delivering"), now)
        with db.snapshot() as conn:
            assert [w["name"] for w in workers_view.workers(conn, now)] == ["w-new"]


def test_the_runbook_names_exactly_the_metrics_served(client: TestClient) -> None:
    f.post(client, f.received(("A", 1)))
    served = set()
    for line in client.get("/metrics").text.splitlines():
        # Counters' `_created` timestamps are prometheus_client's, not the service's figures.
        if line.startswith("# TYPE invsync_") and not line.split()[2].endswith("_created"):
            served.add(line.split()[2])
    runbook = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    section = runbook.read_text().split("## Metrics and logs", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"\binvsync_[a-z_]+[a-z]", section))
    assert documented == served


def test_ignored_events_are_counted_by_name_with_bounded_labels(client: TestClient) -> None:
    f.post(client, f.envelope("order.created", {"id": "O-1"}))
    f.post(client, f.envelope("order.created", {"id": "O-2"}))
    f.post(client, f.envelope("Not A NewStore Name; DROP", {"id": "X"}))
    body = client.get("/metrics").text
    counts = dict(re.findall(r'^invsync_ignored_events_total\{name="([^"]+)"\} (\S+)$', body, re.M))
    assert float(counts["order.created"]) >= 2
    assert float(counts["other"]) >= 1
    assert "DROP" not in body
    assert metrics.ignored_label("x" * 65 + ".y") == "other"
