"""`POST /webhooks/newstore` as PRODUCT.md section 4 describes it, plus the event read API
and the health endpoints, through the real app on both backends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from tests import factories as f
from tests.conftest import POSTGRES_URL
from tests.live import live_server

URL = "/webhooks/newstore"


def stored(client: TestClient) -> list[dict[str, Any]]:
    return f.events(client)


class TestAuthentication:
    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "",
            "Bearer",
            "Bearer wrong-key",
            "Basic dGVzdC13ZWJob29rLWtleQ==",
            "test-webhook-key",
        ],
    )
    def test_missing_or_wrong_key_is_401_and_stores_nothing(
        self, client: TestClient, authorization: str | None
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        response = client.post(URL, content=json.dumps(f.received(("A", 1))), headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert stored(client) == []
        assert f.ledger(client) == []

    def test_ops_token_is_not_a_webhook_key(self, client: TestClient) -> None:
        response = f.post_raw(
            client, json.dumps(f.received(("A", 1))), f.webhook_headers(f.READ_TOKEN)
        )
        assert response.status_code == 401

    @pytest.mark.parametrize("key", [f.WEBHOOK_KEY, "previous-webhook-key"])
    def test_every_rotation_key_is_accepted(self, client: TestClient, key: str) -> None:
        response = f.post_raw(client, json.dumps(f.received(("A", 1))), f.webhook_headers(key))
        assert response.status_code == 200
        assert response.json()["status"] == "accepted"


class TestLimits:
    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
    )
    def test_non_json_content_type_is_415(self, client: TestClient, content_type: str) -> None:
        headers = {**f.webhook_headers(), "Content-Type": content_type}
        response = f.post_raw(client, json.dumps(f.received(("A", 1))), headers)
        assert response.status_code == 415
        assert stored(client) == []

    @pytest.mark.parametrize(
        "content_type", ["application/json; charset=utf-8", "application/cloudevents+json"]
    )
    def test_json_media_types_with_parameters_are_accepted(
        self, client: TestClient, content_type: str
    ) -> None:
        headers = {**f.webhook_headers(), "Content-Type": content_type}
        response = f.post_raw(client, json.dumps(f.received(("A", 1))), headers)
        assert response.json()["status"] == "accepted"

    @pytest.fixture
    def small(self, settings: Settings) -> Iterator[TestClient]:
        with TestClient(create_app(settings.model_copy(update={"max_body_bytes": 2048}))) as c:
            yield c

    def big_body(self) -> bytes:
        body = f.received(*[(f"P{n}", 1) for n in range(200)])
        content = json.dumps(body).encode()
        assert len(content) > 2048
        return content

    def test_body_over_the_limit_is_413(self, small: TestClient) -> None:
        response = f.post_raw(small, self.big_body())
        assert response.status_code == 413
        assert stored(small) == []

    def test_body_at_the_limit_is_read(self, small: TestClient) -> None:
        content = json.dumps(f.received(("A", 1))).encode()
        content += b" " * (2048 - len(content))
        assert f.post_raw(small, content).json()["status"] == "accepted"

    def test_streamed_body_without_content_length_is_413(self, small: TestClient) -> None:
        content = self.big_body()

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(content), 256):
                yield content[start : start + 256]

        response = small.post(URL, content=chunks(), headers=f.webhook_headers())
        assert response.status_code == 413
        assert stored(small) == []

    def test_lying_content_length_is_413(self, small: TestClient) -> None:
        headers = {**f.webhook_headers(), "Content-Length": "100"}
        response = small.post(URL, content=self.big_body(), headers=headers)
        assert response.status_code == 413
        assert stored(small) == []

    def test_streamed_oversized_body_over_a_real_socket_is_413(self, settings: Settings) -> None:
        small = settings.model_copy(update={"max_body_bytes": 2048})

        def endless() -> Iterator[bytes]:
            yield b'{"tenant": "acme", "junk": "'
            for _ in range(100_000):  # 100 MB if it were all read
                yield b"x" * 1024

        with live_server(small) as url, httpx.Client(base_url=url, timeout=20) as http:
            started = time.monotonic()
            try:
                response = http.post(URL, content=endless(), headers=f.webhook_headers())
            except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
                pass  # the server may close the connection before reading the rest
            else:
                assert response.status_code == 413
            assert time.monotonic() - started < 15  # answered early, not after 100 MB
            with TestClient(create_app(small)) as c:
                assert stored(c) == []


class TestAnswers:
    def test_accepted(self, client: TestClient) -> None:
        response = f.post_raw(client, json.dumps(f.received(("A", 1))))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()
        assert set(answer) == {"status", "event_id", "detail"}
        assert answer["status"] == "accepted"
        assert isinstance(answer["event_id"], int)
        assert f.event(client, answer["event_id"])["status"] == "accepted"

    def test_duplicate_changes_nothing(self, client: TestClient) -> None:
        body = f.received(("A", 3))
        first = f.post(client, body)
        second = f.post(client, body)
        assert second["status"] == "duplicate"
        assert second["event_id"] == first["event_id"]
        assert str(first["event_id"]) in second["detail"]
        assert [m["quantity"] for m in f.ledger(client)] == [3]
        assert len(stored(client)) == 1

    def test_duplicate_ignores_key_order_and_whitespace(self, client: TestClient) -> None:
        body = f.received(("A", 3))
        f.post(client, body)
        reordered = json.dumps(body, indent=2, sort_keys=True)
        assert f.post(client, reordered)["status"] == "duplicate"

    def test_unhandled_name_is_ignored_and_stored(self, client: TestClient) -> None:
        answer = f.post(client, f.envelope("order.created", {"id": "O-1", "items": []}))
        assert answer["status"] == "ignored"
        assert answer["detail"] is None
        assert f.event(client, answer["event_id"])["status"] == "ignored"
        assert f.ledger(client) == []
        assert (
            f.post(client, f.envelope("order.created", {"id": "O-1", "items": []}))["status"]
            == "duplicate"
        )

    def test_unhandled_events_are_never_compared_by_key(self, client: TestClient) -> None:
        # A fulfillment request re-routed to another store: same payload.id, other content.
        first = f.post(
            client, f.envelope("fulfillment_request.assigned", {"id": "FR-1", "to": "A"})
        )
        again = f.post(
            client, f.envelope("fulfillment_request.assigned", {"id": "FR-1", "to": "B"})
        )
        assert (first["status"], again["status"]) == ("ignored", "ignored")
        assert again["event_id"] != first["event_id"]
        assert f.events(client, status="quarantined") == []
        assert [e["payload_id"] for e in f.events(client, status="ignored")] == ["FR-1", "FR-1"]

    def test_a_refused_unhandled_event_keeps_its_own_reason(self, client: TestClient) -> None:
        # Refused for its envelope, not for a key it shares with another unhandled event.
        answers = [
            f.post(
                client,
                f.envelope("order.created", {"id": "O-9"}, published_at=published_at),
            )
            for published_at in ("nope", "also-nope")
        ]
        assert [a["status"] for a in answers] == ["quarantined", "quarantined"]
        assert [a["detail"].split(":")[0] for a in answers] == ["published_at", "published_at"]
        assert "also-nope" in answers[1]["detail"]

    def test_an_ignored_body_is_not_kept_unless_configured(
        self, client: TestClient, settings: Settings
    ) -> None:
        body = json.dumps(f.envelope("order.created", {"id": "O-9", "total": 12})).encode()
        answer = f.post(client, body)
        event = f.event(client, answer["event_id"])
        assert (event["name"], event["payload_id"], event["tenant"]) == (
            "order.created",
            "O-9",
            f.TENANT,
        )
        assert event["raw_body_kept"] is False
        assert event["raw_body"] is None
        raw = f.raw(client, answer["event_id"])
        assert raw.status_code == 404
        assert "INVSYNC_KEEP_IGNORED_BODIES" in raw.json()["detail"]
        assert f.post(client, body)["status"] == "duplicate"  # known by its bytes all the same
        keeping = settings.model_copy(update={"keep_ignored_bodies": True})
        with TestClient(create_app(keeping)) as kept:
            other = json.dumps(f.envelope("order.created", {"id": "O-10"})).encode()
            answer = f.post(kept, other)
            assert f.raw(kept, answer["event_id"]).content == other
            assert f.event(kept, answer["event_id"])["raw_body_kept"] is True

    def test_quarantined_has_a_reason(self, client: TestClient) -> None:
        answer = f.post(client, f.received(("A", -1)))
        assert answer["status"] == "quarantined"
        assert "payload.items.0.quantity" in answer["detail"]
        assert "negative" in answer["detail"]
        event = f.event(client, answer["event_id"])
        assert (event["status"], event["error"]) == ("quarantined", answer["detail"])

    def test_same_key_other_content_is_quarantined_precisely(self, client: TestClient) -> None:
        body = f.received(("A", 3))
        first = f.post(client, body)
        body["payload"]["items"][0]["quantity"] = 4
        conflict = f.post(client, body)
        assert conflict["status"] == "quarantined"
        assert conflict["event_id"] != first["event_id"]
        assert conflict["detail"] == (
            f"dedupe key already used by event {first['event_id']} with different content"
        )
        assert [m["quantity"] for m in f.ledger(client)] == [3]
        # Redelivering the conflicting body is itself a duplicate of the quarantined copy.
        again = f.post(client, body)
        assert (again["status"], again["event_id"]) == ("duplicate", conflict["event_id"])

    def test_other_chunk_or_name_is_another_event(self, client: TestClient) -> None:
        body = f.received(("A", 1), chunk_number=1, total_chunks=2)
        f.post(client, body)
        body["payload"]["chunk_number"] = 2
        assert f.post(client, body)["status"] == "accepted"
        body["name"] = "inventory_transaction.items_ready_for_handover"
        assert f.post(client, body)["status"] == "accepted"
        assert [m["quantity"] for m in f.ledger(client)] == [1, 1, -1]

    def test_missing_chunk_number_is_chunk_one(self, client: TestClient) -> None:
        body = f.received(("A", 1))
        f.post(client, body)
        del body["payload"]["chunk_number"]
        assert f.post(client, body)["status"] != "accepted"


class TestTenants:
    @pytest.fixture
    def restricted(self, settings: Settings) -> Iterator[TestClient]:
        with TestClient(create_app(settings.model_copy(update={"tenants": ["acme", "beta"]}))) as c:
            yield c

    def test_unknown_tenant_is_quarantined(self, restricted: TestClient) -> None:
        body = f.received(("A", 1))
        body["tenant"] = "mallory"
        answer = f.post(restricted, body)
        assert answer["status"] == "quarantined"
        assert "mallory" in answer["detail"]
        assert "INVSYNC_TENANTS" in answer["detail"]
        assert f.ledger(restricted) == []

    def test_listed_tenants_are_accepted(self, restricted: TestClient) -> None:
        body = f.received(("A", 1))
        assert f.post(restricted, body)["status"] == "accepted"
        body["tenant"] = "beta"
        assert f.post(restricted, body)["status"] == "accepted"


class TestRawBody:
    def test_kept_byte_for_byte_with_its_content_type(self, client: TestClient) -> None:
        content = (
            b'{ "tenant":"acme" ,"name":"inventory_transaction.items_received",\n'
            b'"published_at":"2024-05-14T09:32:18.402Z","payload":{"id":"r-1",'
            b'"fulfillment_location_id":"S\\u00e9","processed_at":"2024-05-14T09:31:55Z",'
            b'"items":[{"product_id":"\xc3\xa9t\xc3\xa9","quantity":1.0}],"extra":[1,2]}}  \n'
        )
        content_type = "application/json; charset=utf-8"
        response = f.post_raw(
            client, content, {**f.webhook_headers(), "Content-Type": content_type}
        )
        answer = response.json()
        assert answer["status"] == "accepted"
        raw = f.raw(client, answer["event_id"])
        assert raw.status_code == 200
        assert raw.content == content
        assert raw.headers["content-type"] == content_type
        assert f.event(client, answer["event_id"])["raw_body"] == content.decode()
        [movement] = f.ledger(client)
        assert (movement["location_id"], movement["product_id"]) == ("Sé", "été")

    def test_non_utf8_body_is_quarantined_and_kept(self, client: TestClient) -> None:
        content = json.dumps(f.received(("caf\u00e9", 1)), ensure_ascii=False).encode("latin-1")
        answer = f.post(client, content)
        assert answer["status"] == "quarantined"
        assert "JSON" in answer["detail"]
        assert f.raw(client, answer["event_id"]).content == content
        event = f.event(client, answer["event_id"])
        assert event["raw_body"] is None
        assert event["raw_body_base64"]

    def test_a_large_event_is_shown_in_part_and_linked_whole(self, client: TestClient) -> None:
        lines = [(f"P{n:05d}", 1) for n in range(1500)]
        content = json.dumps(f.received(*lines, padding="x" * (1024 * 1024))).encode()
        answer = f.post(client, content)
        assert answer["status"] == "accepted"
        event = f.event(client, answer["event_id"])
        assert event["raw_body_bytes"] == len(content)
        assert event["raw_body"] is None
        assert event["raw_body_base64"] is None
        assert f.raw(client, answer["event_id"]).content == content
        assert event["movements_total"] == 1500
        assert [m["product_id"] for m in event["movements"]] == [p for p, _ in lines[:1000]]
        assert event["erp_message"]["status"] == "pending"
        assert "document" not in event["erp_message"]
        small = f.post(client, f.received(("A", 1)))
        shown = f.event(client, small["event_id"])
        assert shown["raw_body_bytes"] == len(shown["raw_body"].encode())
        assert shown["movements_total"] == len(shown["movements"]) == 1

    def test_unknown_fields_are_ignored_but_kept(self, client: TestClient) -> None:
        body = f.received(("A", 2), brand_new_field={"nested": [1, 2]})
        body["payload"]["items"][0]["colour"] = "red"
        body["delivery_attempt"] = 3
        content = json.dumps(body).encode()
        answer = f.post(client, content)
        assert answer["status"] == "accepted"
        assert [m["quantity"] for m in f.ledger(client)] == [2]
        assert json.loads(f.raw(client, answer["event_id"]).content) == body

    def test_missing_content_type_is_stored_as_json(self, client: TestClient) -> None:
        headers = {"Authorization": f"Bearer {f.WEBHOOK_KEY}"}
        response = f.post_raw(client, json.dumps(f.received(("A", 1))).encode(), headers)
        assert response.json()["status"] == "accepted"


class TestTimestamps:
    @pytest.mark.parametrize(
        ("given", "stored_as"),
        [
            ("2024-05-14T09:32:18Z", "2024-05-14T09:32:18Z"),
            ("2024-05-14T09:32:18.4Z", "2024-05-14T09:32:18.400000Z"),
            ("2024-05-14T09:32:18.402Z", "2024-05-14T09:32:18.402000Z"),
            ("2024-05-14T09:32:18.402206Z", "2024-05-14T09:32:18.402206Z"),
            ("2024-05-14T09:32:18.554206583Z", "2024-05-14T09:32:18.554206Z"),
            ("2024-05-14T09:32:18.999999999Z", "2024-05-14T09:32:18.999999Z"),
            ("2018-09-21T21:40:08.633400", "2018-09-21T21:40:08.633400Z"),
            ("2024-05-14T11:32:18.1234567+02:00", "2024-05-14T09:32:18.123456Z"),
            ("2024-05-14T04:02:18-05:30", "2024-05-14T09:32:18Z"),
            ("2024-05-14T09:32:18+0000", "2024-05-14T09:32:18Z"),
            ("2024-05-15T01:32:18.5+16:00", "2024-05-14T09:32:18.500000Z"),
        ],
    )
    def test_stored_as_utc_microseconds(
        self, client: TestClient, given: str, stored_as: str
    ) -> None:
        body = f.received(("A", 1), processed_at=given)
        body["published_at"] = given
        answer = f.post(client, body)
        assert answer["status"] == "accepted", answer
        event = f.event(client, answer["event_id"])
        assert event["published_at"] == stored_as
        assert event["occurred_at"] == stored_as
        assert f.ledger(client)[0]["occurred_at"] == stored_as

    @pytest.mark.parametrize(
        "given",
        ["yesterday", "2024-13-01T00:00:00Z", "2024-02-30T10:00:00Z", "2024-05-14T25:00:00Z", ""],
    )
    def test_invalid_is_quarantined_naming_the_field(self, client: TestClient, given: str) -> None:
        answer = f.post(client, f.received(("A", 1), processed_at=given))
        assert answer["status"] == "quarantined"
        assert answer["detail"].startswith("payload.processed_at:")


class TestDatabaseUnavailable:
    @pytest.fixture
    def unreachable(self, settings: Settings) -> Iterator[TestClient]:
        down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/x"})
        with TestClient(create_app(down)) as c:
            yield c

    def test_intake_is_503_with_retry_after(self, unreachable: TestClient) -> None:
        started = time.monotonic()
        response = f.post_raw(unreachable, json.dumps(f.received(("A", 1))))
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert time.monotonic() - started < 10

    def test_wrong_key_is_still_401(self, unreachable: TestClient) -> None:
        response = f.post_raw(unreachable, b"{}", f.webhook_headers("nope"))
        assert response.status_code == 401

    def test_reads_are_503_and_readyz_says_why(self, unreachable: TestClient) -> None:
        assert unreachable.get("/v1/events", headers=f.read_headers()).status_code == 503
        ready = unreachable.get("/readyz")
        assert ready.status_code == 503
        assert "database unavailable" in ready.json()["reason"]
        assert unreachable.get("/healthz").status_code == 200


class TestEventList:
    def test_filters(self, client: TestClient) -> None:
        receipt = f.post(client, f.received(("A", 1)))["event_id"]
        handover = f.post(client, f.handover(("A", 1), fulfillment_location_id="US-LA-07"))[
            "event_id"
        ]
        bad = f.post(client, f.received(("A", -1)))["event_id"]
        other_tenant = f.received(("A", 1))
        other_tenant["tenant"] = "beta"
        beta = f.post(client, other_tenant)["event_id"]

        def ids(**filters: Any) -> list[int]:
            return [e["id"] for e in f.events(client, **filters)]

        # Newest first unless asked otherwise.
        assert ids() == [beta, bad, handover, receipt]
        assert ids(order="asc") == [receipt, handover, bad, beta]
        assert ids(status="quarantined") == [bad]
        assert ids(status="accepted", order="asc") == [receipt, handover, beta]
        assert ids(name="inventory_transaction.items_ready_for_handover") == [handover]
        assert ids(tenant="beta") == [beta]
        assert ids(location_id="US-LA-07") == [handover]
        assert ids(since="2000-01-01T00:00:00Z", order="asc") == [receipt, handover, bad, beta]
        assert ids(until="2000-01-01T00:00:00Z") == []
        listed = f.events(client, status="quarantined")[0]
        for field in ("id", "tenant", "name", "status", "error", "received_at", "payload_id"):
            assert field in listed
        assert listed["chunk_number"] == 1

    @pytest.mark.parametrize("order", ["asc", "desc"])
    def test_cursor_pagination_visits_every_event_once(
        self, client: TestClient, order: str
    ) -> None:
        posted = [f.post(client, f.received(("A", 1)))["event_id"] for _ in range(7)]
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/events", params=params, headers=f.read_headers()).json()
            seen += [e["id"] for e in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == (posted if order == "asc" else posted[::-1])
        assert pages == 3

    @pytest.mark.parametrize(
        "params", [{"cursor": "garbage!"}, {"limit": 0}, {"limit": 1001}, {"status": "nope"}]
    )
    def test_bad_parameters_are_4xx(self, client: TestClient, params: dict[str, Any]) -> None:
        response = client.get("/v1/events", params=params, headers=f.read_headers())
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "yesterday"])
    def test_bad_time_filter_is_422(self, client: TestClient, since: str) -> None:
        response = client.get("/v1/events", params={"since": since}, headers=f.read_headers())
        assert response.status_code == 422
        assert "since" in response.json()["detail"]

    def test_needs_an_ops_token(self, client: TestClient) -> None:
        assert client.get("/v1/events").status_code == 401
        assert client.get("/v1/events", headers=f.webhook_headers()).status_code == 401

    def test_unknown_event_is_404(self, client: TestClient) -> None:
        assert client.get("/v1/events/999999", headers=f.read_headers()).status_code == 404
        assert f.raw(client, 999999).status_code == 404


class TestHealth:
    def test_healthz_and_readyz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"

    @pytest.fixture
    def empty_postgres(self, postgres_url: str) -> Iterator[str]:
        name = f"{postgres_url.rpartition('/')[2]}_empty"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        yield f"{postgres_url.rpartition('/')[0]}/{name}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def test_readyz_is_503_while_the_schema_is_missing(self, empty_postgres: str) -> None:
        behind = Settings(
            database_url=empty_postgres,
            webhook_keys=[f.WEBHOOK_KEY],
            ops_tokens=[f.READ_TOKEN],
            _env_file=None,
        )
        with TestClient(create_app(behind)) as c:
            ready = c.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "not_ready"
            assert "schema not created" in ready.json()["reason"]
            assert "Retry-After" in ready.headers
            assert c.get("/healthz").status_code == 200
            # Intake never answers 2xx for an event it cannot store.
            response = f.post_raw(c, json.dumps(f.received(("A", 1))))
            assert response.status_code == 503
            # Nor does any read answer 500 while the schema is missing.
            for path in ("/v1/events", "/v1/events/1", "/v1/ledger", "/v1/stock"):
                response = c.get(path, headers=f.read_headers())
                assert response.status_code == 503, path
                assert "Retry-After" in response.headers
