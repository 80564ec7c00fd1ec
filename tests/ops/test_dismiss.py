"""Dismissing quarantined events: kept for audit, out of the quarantine counts, not replayed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inventory_sync.intake import dismiss as dismissal
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories as f
from tests.ops.test_replay import quarantine, rows

ADMIN_FINGERPRINT = hashlib.sha256(f.ADMIN_TOKEN.encode()).hexdigest()[:8]


def dismiss(client: TestClient, event_id: int, **body: Any) -> Any:
    return client.post(
        f"/v1/events/{event_id}/dismiss",
        json={"reason": "test junk from the staging tenant", **body},
        headers=f.admin_headers(),
    )


def dismiss_many(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/events/dismiss", json=body, headers=f.admin_headers())


def summary(client: TestClient) -> dict[str, Any]:
    answer: dict[str, Any] = client.get("/v1/reconciliation", headers=f.read_headers()).json()
    return answer


class TestDismissOne:
    def test_a_dismissed_event_is_kept_with_who_when_and_why(
        self, client: TestClient, settings: Settings
    ) -> None:
        kept, dropped = quarantine(settings, f.received(("A", 1)), f.received(("B", 1)))
        assert summary(client)["events"] == {"quarantined": 2, "dismissed": 0}

        error = f.event(client, dropped)["error"]
        response = dismiss(client, dropped, by="alice")
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] == dropped
        assert answer["status"] == "dismissed"
        assert answer["dismiss_reason"] == "test junk from the staging tenant"
        assert answer["dismissed_by"] == f"alice (admin token {ADMIN_FINGERPRINT})"
        assert answer["dismissed_at"] is not None

        shown = f.event(client, dropped)
        assert shown["status"] == "dismissed"
        assert shown["error"] == error
        assert shown["raw_body"] is not None
        assert f.raw(client, dropped).status_code == 200
        assert [e["id"] for e in f.events(client, status="quarantined")] == [kept]
        assert [e["id"] for e in f.events(client, status="dismissed")] == [dropped]
        assert summary(client)["events"] == {"quarantined": 1, "dismissed": 1}

        body = client.get("/metrics").text
        name = "inventory_transaction.items_received"
        assert f'invsync_stored_events{{name="{name}",status="quarantined"}} 1.0' in body
        assert f'invsync_stored_events{{name="{name}",status="dismissed"}} 1.0' in body

    def test_replay_refuses_a_dismissed_event(
        self, client: TestClient, settings: Settings, db: Database
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        assert dismiss(client, event_id).status_code == 200
        # Today's configuration would accept it: the dismissal still stands.
        response = client.post(f"/v1/events/{event_id}/replay", headers=f.admin_headers())
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert "dismissed" in response.json()["detail"]
        assert rows(db, event_id) == (0, 0)
        assert f.event(client, event_id)["status"] == "dismissed"

    def test_dismissing_again_keeps_the_first_record(
        self, client: TestClient, settings: Settings
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        first = dismiss(client, event_id).json()
        again = dismiss(client, event_id, reason="another reason", by="bob")
        assert again.status_code == 200
        assert again.json() == first

    def test_only_a_quarantined_event_is_dismissed(self, client: TestClient) -> None:
        accepted = f.post(client, f.received(("A", 1)))["event_id"]
        response = dismiss(client, accepted)
        assert response.status_code == 409
        assert response.json()["type"].endswith("not_quarantined")
        assert f.event(client, accepted)["status"] == "accepted"
        assert dismiss(client, 999_999).status_code == 404

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"reason": ""},
            {"reason": " \n"},
            {"reason": "x" * 1001},
            {"reason": "a\u0000b"},
            {"reason": "ok", "x": 1},
        ],
    )
    def test_a_reason_is_required(
        self, client: TestClient, settings: Settings, body: dict[str, Any]
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        response = client.post(
            f"/v1/events/{event_id}/dismiss", json=body, headers=f.admin_headers()
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert f.event(client, event_id)["status"] == "quarantined"

    def test_a_read_token_cannot_dismiss(self, client: TestClient, settings: Settings) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        response = client.post(
            f"/v1/events/{event_id}/dismiss", json={"reason": "x"}, headers=f.read_headers()
        )
        assert response.status_code == 403
        assert (
            client.post(f"/v1/events/{event_id}/dismiss", json={"reason": "x"}).status_code == 401
        )


class TestRedelivery:
    def test_a_redelivered_dismissed_event_is_a_duplicate(self, client: TestClient) -> None:
        junk = b'{"tenant": "acme", "name": "inventory_transaction.items_received", "payload": ['
        first = f.post(client, junk)
        assert first["status"] == "quarantined"
        keyed = f.received(("A", -1))
        second = f.post(client, keyed)
        assert second["status"] == "quarantined"
        for event_id in (first["event_id"], second["event_id"]):
            assert dismiss(client, event_id).status_code == 200

        # NewStore hears only its own four statuses: what is stored is a duplicate.
        assert f.post(client, junk) == {
            "status": "duplicate",
            "event_id": first["event_id"],
            "detail": f"already stored as event {first['event_id']}",
        }
        assert f.post(client, keyed)["status"] == "duplicate"
        assert {e["status"] for e in f.events(client)} == {"dismissed"}


class TestDismissMany:
    def test_by_filter_in_batches(
        self, client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(dismissal, "BATCH", 2)
        receipts = quarantine(settings, *(f.received(("A", 1)) for _ in range(5)))
        [adjusted] = quarantine(settings, f.adjustment(("A", 1)))
        accepted = f.post(client, f.received(("A", 1)))["event_id"]

        response = dismiss_many(
            client, reason="tenant mix-up", name="inventory_transaction.items_received"
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"dismissed": 5}
        assert sorted(e["id"] for e in f.events(client, status="dismissed")) == receipts
        assert [e["id"] for e in f.events(client, status="quarantined")] == [adjusted]
        assert f.event(client, accepted)["status"] == "accepted"
        assert {e["dismiss_reason"] for e in f.events(client, status="dismissed")} == {
            "tenant mix-up"
        }
        # Nothing left to dismiss: nothing changes.
        again = dismiss_many(client, reason="x", name="inventory_transaction.items_received")
        assert again.json() == {"dismissed": 0}

    def test_every_one_needs_all(self, client: TestClient, settings: Settings) -> None:
        quarantine(settings, f.received(("A", 1)), f.adjustment(("A", 1)))
        refused = dismiss_many(client, reason="clean-up")
        assert refused.status_code == 422
        assert "all" in refused.json()["detail"]
        assert len(f.events(client, status="quarantined")) == 2
        assert dismiss_many(client, reason="clean-up", all=True).json() == {"dismissed": 2}

    def test_bad_times_are_problems(self, client: TestClient) -> None:
        response = dismiss_many(client, reason="x", since="yesterday")
        assert response.status_code == 422
        assert "since" in response.json()["detail"]
