"""`/v1/sync/messages`: listing, one message with its attempts, retry, and who may do what."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories
from tests.erp_sync.conftest import (
    FakeErp,
    Reply,
    accept,
    erp_settings,
    make_worker,
    message,
    run,
)

READ = factories.read_headers()
ADMIN = factories.admin_headers()


def _page(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/sync/messages", params=params, headers=READ)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestListMessages:
    def test_filters_and_fields(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        delivered, dead, pending = accept(client, 3)
        erp.by_key[dead] = Reply(422, body="bad sku")
        erp.by_key[pending] = Reply(503)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())

        everything = _page(client, order="asc")
        assert [i["id"] for i in everything["items"]] == [delivered, dead, pending]
        # Newest first unless asked otherwise.
        assert [i["id"] for i in _page(client)["items"]] == [pending, dead, delivered]
        assert everything["next_cursor"] is None
        item = everything["items"][0]
        for name in ("id", "type", "status", "attempts", "next_attempt_at", "last_error"):
            assert name in item
        assert isinstance(item["event_id"], int)
        assert "document" not in item
        for status, expected in (("delivered", delivered), ("dead", dead), ("pending", pending)):
            assert [i["id"] for i in _page(client, status=status)["items"]] == [expected]
        assert len(_page(client, type="inventory.receipt")["items"]) == 3
        assert _page(client, type="inventory.count")["items"] == []
        event_id = everything["items"][1]["event_id"]
        assert [i["id"] for i in _page(client, event_id=event_id)["items"]] == [dead]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    def test_cursor_pagination(self, client: TestClient, order: str) -> None:
        ids = accept(client, 5)
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2, "order": order}
        while True:
            page = _page(client, **params)
            assert len(page["items"]) <= 2
            seen.extend(i["id"] for i in page["items"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == (ids if order == "asc" else ids[::-1])

    def test_bad_parameters_are_problems_not_500(self, client: TestClient) -> None:
        for params in ({"cursor": "not-a-cursor"}, {"status": "lost"}, {"limit": 1001}):
            response = client.get("/v1/sync/messages", params=params, headers=READ)
            assert response.status_code in (400, 422), params
            assert response.headers["content-type"] == "application/problem+json"


class TestGetMessage:
    def test_message_with_document_and_attempts(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        erp.by_key[message_id] = Reply(500, body="boom")
        worker = make_worker(erp_settings(settings, erp.url), db)
        run(worker.run_once())
        del erp.by_key[message_id]
        run(worker.drain(5))

        body = message(client, message_id)
        assert body["document"]["id"] == message_id
        log = body["attempt_log"]
        assert [(a["status_code"], a["outcome"]) for a in log] == [
            (500, "retry"),
            (200, "delivered"),
        ]
        assert log[0]["error"] == "HTTP 500: boom"
        for attempt in log:
            assert set(attempt) >= {"attempted_at", "status_code", "error", "duration_ms"}

    def test_unknown_message_is_404(self, client: TestClient) -> None:
        response = client.get("/v1/sync/messages/nope", headers=READ)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


class TestRetry:
    def test_retry_one_dead_message(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [dead] = accept(client)
        erp.by_key[dead] = Reply(422, body="bad sku")
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        assert message(client, dead)["status"] == "dead"

        response = client.post(f"/v1/sync/messages/{dead}/retry", headers=ADMIN)

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["attempts"]) == ("pending", 0)
        assert body["next_attempt_at"] is not None
        del erp.by_key[dead]
        run(make_worker(erp_settings(settings, erp.url), db).drain(5))
        assert message(client, dead)["status"] == "delivered"

    def test_retry_all_dead(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        ids = accept(client, 3)
        for message_id in ids[:2]:
            erp.by_key[message_id] = Reply(400)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())

        response = client.post("/v1/sync/messages/retry", headers=ADMIN)

        assert response.json() == {"retried": 2, "failed": 0, "remaining": 0}
        assert [message(client, i)["status"] for i in ids] == ["pending", "pending", "delivered"]
        again = client.post("/v1/sync/messages/retry", headers=ADMIN).json()
        assert again == {"retried": 0, "failed": 0, "remaining": 0}

    def test_retry_delivered_is_409_and_unknown_404(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        response = client.post(f"/v1/sync/messages/{message_id}/retry", headers=ADMIN)
        assert response.status_code == 409
        assert client.post("/v1/sync/messages/nope/retry", headers=ADMIN).status_code == 404

    def test_roles(self, client: TestClient) -> None:
        [message_id] = accept(client)
        for method, path in (
            ("GET", "/v1/sync/messages"),
            ("GET", f"/v1/sync/messages/{message_id}"),
            ("POST", f"/v1/sync/messages/{message_id}/retry"),
            ("POST", "/v1/sync/messages/retry"),
        ):
            response = client.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            wrong = client.request(method, path, headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401, path
        for path in (f"/v1/sync/messages/{message_id}/retry", "/v1/sync/messages/retry"):
            response = client.post(path, headers=READ)
            assert response.status_code == 403, path
            assert response.headers["content-type"] == "application/problem+json"
        assert message(client, message_id)["status"] == "pending"
