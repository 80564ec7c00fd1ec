"""How each answer of the ERP is classified and recorded."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest
from fastapi.testclient import TestClient

from inventory_sync.clock import utcnow
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

RETRYABLE = [408, 425, 429, 500, 502, 503]


def _due(item: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(item["next_attempt_at"]))


class TestRetryable:
    def test_each_retryable_class_stays_pending(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        ids = accept(client, len(RETRYABLE) + 1)
        for message_id, status in zip(ids, RETRYABLE, strict=False):
            erp.by_key[message_id] = Reply(status, body=f"busy {status}")
        # The last one times out: the server answers long after the client gave up.
        erp.by_key[ids[-1]] = Reply(200, delay=3.0)
        config = erp_settings(settings, erp.url, erp_timeout_seconds=1.0, erp_concurrency=8)
        before = utcnow()

        assert run(make_worker(config, db).run_once()) == len(ids)

        for message_id, status in zip(ids, RETRYABLE, strict=False):
            item = message(client, message_id)
            assert item["status"] == "pending", status
            assert item["last_status_code"] == status, item
            assert item["last_error"] == f"HTTP {status}: busy {status}"
            assert item["claimed_by"] is None
            assert _due(item) > before
            [attempt] = item["attempt_log"]
            assert (attempt["outcome"], attempt["status_code"]) == ("retry", status)
        timed_out = message(client, ids[-1])
        assert timed_out["status"] == "pending"
        assert timed_out["last_error"].startswith("timeout")
        [attempt] = timed_out["attempt_log"]
        assert attempt["status_code"] is None
        # The whole request is cut off at the timeout, not when the server answers.
        assert 950 <= attempt["duration_ms"] < 2500

    def test_connection_refused_is_retried(
        self, client: TestClient, settings: Settings, db: Database, refused_url: str
    ) -> None:
        [message_id] = accept(client)
        run(make_worker(erp_settings(settings, refused_url), db).run_once())
        item = message(client, message_id)
        assert item["status"] == "pending"
        assert item["last_error"].startswith("connection error")
        assert item["attempt_log"][0]["outcome"] == "retry"

    def test_retried_message_is_delivered_when_due(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        erp.by_key[message_id] = Reply(503)
        worker = make_worker(erp_settings(settings, erp.url), db)
        run(worker.run_once())
        del erp.by_key[message_id]
        run(worker.drain(5))
        item = message(client, message_id)
        assert item["status"] == "delivered"
        assert [a["outcome"] for a in item["attempt_log"]] == ["retry", "delivered"]
        assert erp.keys() == [message_id, message_id]


class TestPermanent:
    @pytest.mark.parametrize("status", [400, 404, 422])
    def test_dead_at_once_with_status_and_body(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp, status: int
    ) -> None:
        [message_id] = accept(client)
        erp.by_key[message_id] = Reply(status, body="unknown location US-NYC-01" + "x" * 2000)
        worker = make_worker(erp_settings(settings, erp.url, erp_max_attempts=10), db)
        run(worker.run_once())
        run(worker.drain(5))  # nothing is pending any more: no second try

        item = message(client, message_id)
        assert item["status"] == "dead"
        assert item["attempts"] == 1
        assert item["last_status_code"] == status
        assert item["last_error"].startswith(f"HTTP {status}: unknown location US-NYC-01")
        assert len(item["last_error"]) <= len(f"HTTP {status}: ") + 500
        assert [a["outcome"] for a in item["attempt_log"]] == ["dead"]
        assert erp.keys() == [message_id]

    def test_message_the_erp_keeps_refusing_dies_after_max_attempts(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        """While other messages go through, the ERP is up: a message failing again and
        again spends its budget and ends up dead."""
        [poison] = accept(client)
        erp.by_key[poison] = Reply(500, body="cannot book this")
        worker = make_worker(erp_settings(settings, erp.url, erp_max_attempts=3), db)
        for _ in range(40):
            accept(client)
            time.sleep(0.1)  # past the poison message's backoff (at most 0.1 s)
            run(worker.run_once())
            if message(client, poison)["status"] == "dead":
                break
        item = message(client, poison)
        assert item["status"] == "dead"
        assert item["attempts"] == 3
        assert item["last_status_code"] == 500
        assert item["attempt_log"][-1]["outcome"] == "dead"


class TestRetryAfter:
    @pytest.mark.parametrize("form", ["seconds", "http-date"])
    def test_retry_after_sets_the_next_attempt(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp, form: str
    ) -> None:
        [message_id] = accept(client)
        wait = timedelta(seconds=120)
        value = "120" if form == "seconds" else format_datetime(utcnow() + wait, usegmt=True)
        erp.by_key[message_id] = Reply(429, headers={"Retry-After": value})
        config = erp_settings(settings, erp.url, erp_retry_max_seconds=3600)
        before = utcnow()
        run(make_worker(config, db).run_once())
        due = _due(message(client, message_id))
        assert before + wait - timedelta(seconds=2) <= due <= utcnow() + wait + timedelta(seconds=1)

    def test_retry_after_is_capped_by_retry_max(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        erp.by_key[message_id] = Reply(503, headers={"Retry-After": "86400"})
        config = erp_settings(settings, erp.url, erp_retry_max_seconds=60)
        run(make_worker(config, db).run_once())
        due = _due(message(client, message_id))
        assert due <= utcnow() + timedelta(seconds=60)
        assert due >= utcnow() + timedelta(seconds=55)
