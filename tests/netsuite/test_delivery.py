"""The netsuite adapter against a local NetSuite: what it sends, and how answers are sorted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inventory_sync.erp_sync.worker import BREAKER_THRESHOLD
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories
from tests.erp_sync.conftest import accept, make_worker, message, message_of_event, run
from tests.netsuite.conftest import (
    ADJUSTMENT_ACCOUNT,
    BUSY,
    CONSUMER_KEY,
    REALM,
    TOKEN_ID,
    TOO_MANY,
    Answer,
    FakeNetSuite,
    netsuite_settings,
)


def _post(client: TestClient, body: dict[str, object]) -> str:
    answer = factories.post(client, body)
    assert answer["status"] == "accepted", answer
    return str(message_of_event(client, answer["event_id"])["id"])


def _drain(settings: Settings, db: Database, **options: object) -> None:
    run(make_worker(settings, db, **options).drain(20))


class TestRequest:
    def test_a_document_is_upserted_by_its_message_id_signed_with_tba(
        self, client: TestClient, settings: Settings, db: Database, netsuite: FakeNetSuite
    ) -> None:
        message_id = _post(client, factories.received(("100234-M", 3)))
        config = netsuite_settings(settings, netsuite.url, netsuite_subsidiary="3")

        _drain(config, db)

        [call] = netsuite.calls
        assert call.method == "PUT"
        assert call.path == f"/services/rest/record/v1/inventoryAdjustment/eid:{message_id}"
        assert call.headers["x-netsuite-idempotency-key"] == message_id
        assert call.headers["content-type"] == "application/json"
        oauth = call.oauth
        assert call.headers["authorization"].startswith(f'OAuth realm="{REALM}", ')
        assert oauth["oauth_consumer_key"] == CONSUMER_KEY
        assert oauth["oauth_token"] == TOKEN_ID
        assert oauth["oauth_signature_method"] == "HMAC-SHA256"
        assert oauth["oauth_version"] == "1.0"
        assert len(oauth["oauth_nonce"]) >= 16
        assert oauth["oauth_timestamp"].isdigit()
        assert call.signed, "oauthlib does not accept the signature"
        assert call.body == {
            "tranDate": "2024-05-14",
            "memo": call.body["memo"],
            "account": {"id": ADJUSTMENT_ACCOUNT},
            "subsidiary": {"id": "3"},
            "inventory": {
                "items": [
                    {"item": {"id": "100234-M"}, "location": {"id": "US-NYC-01"}, "adjustQtyBy": 3}
                ]
            },
        }
        assert call.body["memo"].startswith("NewStore inventory.receipt ")
        assert message(client, message_id)["status"] == "delivered"

    def test_every_nonce_differs_and_a_redelivery_upserts_the_same_record(
        self, client: TestClient, settings: Settings, db: Database, netsuite: FakeNetSuite
    ) -> None:
        message_id = _post(client, factories.received(("A", 2)))
        config = netsuite_settings(settings, netsuite.url)
        _drain(config, db)
        # Delivered once; delivered again as after a lease ran out mid-request.
        worker = make_worker(config, db)

        async def again() -> None:
            async with worker._client() as adapter:
                document = json.dumps(_document(client, message_id))
                result = await adapter.send(message_id, document)
                assert result.outcome.value == "delivered"

        run(again())
        first, second = netsuite.calls
        assert first.path == second.path
        assert first.oauth["oauth_nonce"] != second.oauth["oauth_nonce"]
        assert len(netsuite.records) == 1
        assert netsuite.stock() == {("A", "US-NYC-01"): 2}


def _document(client: TestClient, message_id: str) -> dict[str, object]:
    document: dict[str, object] = message(client, message_id)["document"]
    return document


class TestWhatEachEventBooks:
    def test_the_adjustments_sum_to_our_stock(
        self,
        client: TestClient,
        settings: Settings,
        db: Database,
        netsuite: FakeNetSuite,
        tmp_path: Path,
    ) -> None:
        mapping = tmp_path / "mapping.json"
        mapping.write_text(
            json.dumps(
                {
                    "locations": {"US-NYC-01": "7"},
                    "stock_locations": {"US-NYC-01/damaged": "8"},
                    "products": {"P1": "501"},
                }
            )
        )
        for body in (
            factories.received(("P1", 10), ("P2", 4)),
            factories.adjustment(("P1", 2)),  # main -> damaged
            factories.handover(("P2", 1)),
            factories.asn(("P2", 1)),  # nothing to book
            factories.counted(("P1", 9, 8), ("P2", 3, 3)),  # P2 without difference
            factories.returned({"product_id": "P2", "quantity": 1, "condition_code": "2"}),
        ):
            _post(client, body)
        config = netsuite_settings(settings, netsuite.url, erp_mapping=mapping)

        _drain(config, db)

        places = {"main": "7", "damaged": "8"}
        products = {"P1": "501"}
        ours = {
            (products.get(row["product_id"], row["product_id"]), places[row["stock_location"]]): (
                row["on_hand"]
            )
            for row in factories.stock(client)
            if row["on_hand"]
        }
        assert netsuite.stock() == ours
        assert ours == {("501", "7"): 9, ("501", "8"): 2, ("P2", "7"): 3, ("P2", "8"): 1}
        assert len(netsuite.calls) == 5  # the ASN books nothing
        assert {c.path.split("/")[5] for c in netsuite.calls} == {"inventoryAdjustment"}
        assert all(c.signed for c in netsuite.calls)
        statuses = {m["status"] for m in _messages(client)}
        assert statuses == {"delivered"}


def _messages(client: TestClient) -> list[dict[str, object]]:
    page = client.get(
        "/v1/sync/messages", params={"limit": 100}, headers=factories.read_headers()
    ).json()
    items: list[dict[str, object]] = page["items"]
    return items


class TestAnswers:
    def test_busy_netsuite_throttles_without_using_attempts_or_the_breaker(
        self, client: TestClient, settings: Settings, db: Database, netsuite: FakeNetSuite
    ) -> None:
        [message_id] = accept(client)
        throttles = [TOO_MANY, BUSY] * BREAKER_THRESHOLD
        netsuite.script = list(throttles)
        # One attempt only: a throttled request that used one would make the message dead.
        config = netsuite_settings(settings, netsuite.url, erp_max_attempts=1)
        worker = make_worker(config, db)
        opened = []

        async def drain() -> None:
            original = worker.breaker.failed

            def failed(*args: object, **kwargs: object) -> bool:
                opened.append(args)
                return original(*args, **kwargs)  # type: ignore[arg-type]

            worker.breaker.failed = failed  # type: ignore[method-assign]
            await worker.drain(60)

        run(drain())

        item = message(client, message_id)
        assert item["status"] == "delivered"
        assert item["attempts"] == 1
        outcomes = [a["outcome"] for a in item["attempt_log"]]
        assert outcomes == ["throttled"] * len(throttles) + ["delivered"]
        codes = [a["status_code"] for a in item["attempt_log"]][: len(throttles)]
        assert codes == [429, 400] * BREAKER_THRESHOLD
        assert "CONCURRENCY_LIMIT_EXCEEDED" in item["attempt_log"][1]["error"]
        assert opened == []
        assert not worker.breaker.is_open

    def test_a_refusal_is_dead_with_netsuites_reason(
        self, client: TestClient, settings: Settings, db: Database, netsuite: FakeNetSuite
    ) -> None:
        [message_id] = accept(client)
        netsuite.script = [
            Answer(
                400,
                "INVALID_CONTENT",
                "You have entered an Invalid Field Value SKU-0 for the following field: item",
            )
        ]

        _drain(netsuite_settings(settings, netsuite.url), db)

        item = message(client, message_id)
        assert item["status"] == "dead"
        assert item["last_status_code"] == 400
        assert "INVALID_CONTENT: You have entered an Invalid Field Value SKU-0" in str(
            item["last_error"]
        )

    @pytest.mark.parametrize("status", [500, 503])
    def test_a_server_error_is_retried(
        self,
        status: int,
        client: TestClient,
        settings: Settings,
        db: Database,
        netsuite: FakeNetSuite,
    ) -> None:
        [message_id] = accept(client)
        netsuite.script = [Answer(status, "UNEXPECTED_ERROR", "An unexpected error occurred.")]

        _drain(netsuite_settings(settings, netsuite.url), db)

        item = message(client, message_id)
        assert item["status"] == "delivered"
        assert [a["outcome"] for a in item["attempt_log"]] == ["retry", "delivered"]
