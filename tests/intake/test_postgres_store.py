"""The PostgreSQL store maps its driver's errors once: a lost connection is "unavailable" (503,
NewStore redelivers) and the pool renewed; values the server refuses are quarantined with the
server's reason; a failure of the statement itself never loses an authenticated body."""

from __future__ import annotations

import asyncio
import json
import random
import string
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from inventory_sync.errors import DatabaseUnavailable, InputRefused
from inventory_sync.storage import postgres
from inventory_sync.storage.store import open_store
from tests import factories as f
from tests.conftest import POSTGRES_URL


@pytest.fixture
def url(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("the PostgreSQL store's driver")
    return database_url


def terminate_others(url: str) -> None:
    """End every other session of the database at `url`, as a server restart would."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def test_a_lost_connection_is_unavailable_and_then_replaced(url: str) -> None:
    async def run() -> None:
        store = await open_store(url, pool_size=2)
        try:
            assert await store.slot_holder("none") is None  # a pooled connection now exists
            terminate_others(url)
            try:
                await store.slot_holder("none")
            except DatabaseUnavailable:
                pass  # the loss was found by this call: retry later
            assert await store.slot_holder("none") is None
        finally:
            await store.close()

    asyncio.run(run())


def test_a_refused_value_is_refused_input_and_the_connection_stays_usable(url: str) -> None:
    async def run() -> None:
        store = await open_store(url, pool_size=1)
        assert isinstance(store, postgres.PostgresStore)
        try:
            with pytest.raises(InputRefused, match="DivisionByZero"):
                await store._fetch("SELECT 1 / 0", ())
            assert [tuple(r) for r in await store._fetch("SELECT 2", ())] == [(2,)]
        finally:
            await store.close()

    asyncio.run(run())


def test_webhook_on_a_lost_connection_is_stored_once(client: TestClient) -> None:
    url = client.app.state.settings.database_url  # type: ignore[attr-defined]
    if url.startswith("sqlite"):
        pytest.skip("the PostgreSQL store's driver")
    f.post(client, f.received(("A", 1)))  # the pool now holds a connection
    terminate_others(url)
    body = json.dumps(f.received(("B", 1)))
    answer = f.post_raw(client, body)
    if answer.status_code == 503:  # the loss was found by this request: NewStore redelivers
        assert "Retry-After" in answer.headers
        answer = f.post_raw(client, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    assert f.post(client, body)["status"] == "duplicate"
    assert [row["product_id"] for row in f.ledger(client)] == ["A", "B"]


def test_webhook_whose_statement_fails_is_kept_quarantined(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    if client.app.state.settings.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("the PostgreSQL store's statement")

    def failing(*_args: Any) -> tuple[str, list[Any]]:
        return "SELECT 1 / 0", []

    monkeypatch.setattr(postgres, "_write_statement", failing)
    body = json.dumps(f.received(("A", 1)))
    answer = f.post(client, body)
    assert answer["status"] == "quarantined"
    assert answer["detail"].startswith("could not be processed: division by zero")
    assert "DivisionByZero" in answer["detail"]
    assert f.raw(client, answer["event_id"]).content == body.encode()
    assert f.ledger(client) == []


def _with_long_ids(text: random.Random) -> dict[str, Any]:
    """A received event whose tenant, location and product ids are each within the validation
    limit (1,000 characters), yet together too long for one PostgreSQL index entry."""

    def long_id() -> str:
        return "".join(text.choice(string.ascii_letters) for _ in range(1000))

    body = f.received((long_id(), 1))
    body["tenant"] = long_id()
    body["payload"]["fulfillment_location_id"] = long_id()
    return body


def test_ids_too_long_for_an_index_are_quarantined_not_refused_forever(
    client: TestClient,
) -> None:
    """Each id is within the validation limit, yet together they exceed what one index entry
    of PostgreSQL can hold. A 503 would make NewStore redeliver the body forever."""
    if client.app.state.settings.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("PostgreSQL's index entry limit")
    raw = json.dumps(_with_long_ids(random.Random(5)))
    answer = f.post(client, raw)
    assert answer["status"] == "quarantined"
    assert "could not be processed" in answer["detail"]
    assert "index row size" in answer["detail"]
    assert f.raw(client, answer["event_id"]).content == raw.encode()
    assert f.post(client, raw)["event_id"] == answer["event_id"]
    assert f.ledger(client) == []


def test_replaying_ids_too_long_for_an_index_keeps_the_event_quarantined(
    client: TestClient,
) -> None:
    """Replay meets the same limit when it writes the ledger rows: a clear verdict, not a 503
    that no retry can change."""
    if client.app.state.settings.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("PostgreSQL's index entry limit")
    stored = f.post(client, json.dumps(_with_long_ids(random.Random(7))))
    assert stored["status"] == "quarantined"

    answer = client.post(f"/v1/events/{stored['event_id']}/replay", headers=f.admin_headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "quarantined"
    assert "index row size" in answer.json()["detail"]
    event = client.get(f"/v1/events/{stored['event_id']}", headers=f.admin_headers()).json()
    assert event["status"] == "quarantined"
    assert event["error"] == answer.json()["detail"]
    assert event["replayed_at"] is not None
    assert f.ledger(client) == []
