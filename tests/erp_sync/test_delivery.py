"""Delivery to a real local HTTP server: the document, its headers and its signature."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from inventory_sync import __version__
from inventory_sync.erp_sync.client import signer
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import outbox_message
from tests.erp_sync.conftest import (
    SECRET,
    FakeErp,
    accept,
    erp_settings,
    make_worker,
    message,
    run,
)


class TestDelivery:
    def test_document_and_headers(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        config = erp_settings(
            settings, erp.url, erp_signing_secret=SECRET, erp_authorization="Basic ZXJwOmVycA=="
        )

        assert run(make_worker(config, db).run_once()) == 1

        [request] = erp.received
        with db.snapshot() as conn:
            stored = conn.execute(
                select(outbox_message.c.document).where(outbox_message.c.id == message_id)
            ).scalar_one()
        assert request.body == stored.encode()
        document = json.loads(request.body)
        assert document["id"] == message_id
        assert document["type"] == "inventory.receipt"
        assert document["lines"][0]["quantity_delta"] == 1
        headers = request.headers
        assert headers["content-type"] == "application/json"
        assert headers["idempotency-key"] == message_id
        assert headers["webhook-id"] == message_id
        assert headers["user-agent"] == f"inventory-sync/{__version__}"
        assert headers["authorization"] == "Basic ZXJwOmVycA=="
        # An independent verifier accepts the signature over the exact bytes sent.
        assert Webhook(SECRET).verify(request.body, headers) == document

        sent = message(client, message_id)
        assert sent["status"] == "delivered"
        assert sent["attempts"] == 1
        assert sent["next_attempt_at"] is None
        assert sent["claimed_by"] is None
        assert sent["delivered_at"] is not None
        [attempt] = sent["attempt_log"]
        assert attempt["outcome"] == "delivered"
        assert attempt["status_code"] == 200
        assert attempt["error"] is None
        assert attempt["duration_ms"] >= 0
        datetime.fromisoformat(attempt["attempted_at"])

    def test_signature_fails_for_another_secret_or_body(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        accept(client)
        run(make_worker(erp_settings(settings, erp.url, erp_signing_secret=SECRET), db).run_once())
        [request] = erp.received
        other = Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
        for verifier, body in (
            (other, request.body),
            (Webhook(SECRET), request.body.replace(b'"quantity_delta":1', b'"quantity_delta":9')),
        ):
            with pytest.raises(WebhookVerificationError, match="signature"):
                verifier.verify(body, request.headers)

    def test_unsigned_without_secret_or_authorization(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        run(make_worker(erp_settings(settings, erp.url), db).run_once())
        [request] = erp.received
        assert request.headers["idempotency-key"] == message_id
        assert not {"authorization", "webhook-signature", "webhook-timestamp"} & set(
            request.headers
        )

    def test_without_erp_url_messages_wait(
        self, client: TestClient, settings: Settings, db: Database
    ) -> None:
        [message_id] = accept(client)
        worker = make_worker(erp_settings(settings, None), db)
        assert run(worker.run_once()) == 0
        run(worker.run_for(0.05))
        run(worker.drain())
        pending = message(client, message_id)
        assert pending["status"] == "pending"
        assert pending["attempt_log"] == []

    def test_drain_delivers_everything_once(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        ids = accept(client, 9)
        run(make_worker(erp_settings(settings, erp.url, erp_concurrency=3), db).drain(10))
        assert sorted(erp.keys()) == sorted(ids)
        assert erp.max_in_flight <= 3
        assert all(message(client, i)["status"] == "delivered" for i in ids)

    def test_unusable_signing_secret_leaves_messages_pending(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        [message_id] = accept(client)
        config = erp_settings(settings, erp.url, erp_signing_secret="whsec_not*base64")
        with pytest.raises(ValueError, match="INVSYNC_ERP_SIGNING_SECRET"):
            signer("whsec_not*base64")
        run(make_worker(config, db).run_for(0.05))
        assert erp.received == []
        assert message(client, message_id)["status"] == "pending"
