"""Intake's one statement runs on psycopg's own connection (`db.first_row`): its errors must be
treated as SQLAlchemy would treat them, and the connection must go back to the pool as it came."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from inventory_sync.db import Database, DatabaseUnavailable, first_row
from inventory_sync.ledger import service as ledger_service
from tests import factories as f
from tests.conftest import POSTGRES_URL


@pytest.fixture
def postgres(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("the driver-level statement is PostgreSQL's")
    return db


def terminate(backend_pids: list[int]) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        for pid in backend_pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_lost_connection_is_unavailable_and_the_pool_replaced(postgres: Database) -> None:
    pool = postgres.engine.pool
    with postgres.autocommit() as conn:
        terminate([conn.connection.driver_connection.info.backend_pid])
        with pytest.raises(DatabaseUnavailable):
            first_row(conn, "SELECT 1", {})
        assert conn.invalidated
    # As SQLAlchemy does when it finds a connection lost: the others are likely lost too.
    assert postgres.engine.pool is not pool
    with postgres.autocommit() as conn:
        assert first_row(conn, "SELECT %(n)s::int", {"n": 7}) == (7,)


def test_a_failing_statement_is_not_unavailable_and_leaves_the_connection_usable(
    postgres: Database,
) -> None:
    with postgres.autocommit() as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            first_row(conn, "SELECT 1 / 0", {})
        assert not conn.invalidated
        assert first_row(conn, "SELECT 2", {}) == (2,)


def test_autocommit_is_off_again_when_the_connection_is_returned(postgres: Database) -> None:
    with postgres.autocommit() as conn:
        driver = conn.connection.driver_connection
        assert driver.autocommit
        first_row(conn, "SELECT 1", {})
    assert not driver.autocommit
    # A transaction on the same pooled connection is a real one again.
    with postgres.transaction() as conn:
        assert conn.connection.driver_connection is driver
        conn.exec_driver_sql("SELECT 1")
        assert conn.connection.driver_connection.info.transaction_status == (
            psycopg.pq.TransactionStatus.INTRANS
        )


def test_webhook_on_a_lost_connection_is_503_then_stored(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    if db.is_sqlite:
        pytest.skip("the driver-level statement is PostgreSQL's")
    with db.autocommit() as conn:  # the connection the next webhook will get
        pid = conn.connection.driver_connection.info.backend_pid
    terminate([pid])
    body = json.dumps(f.received(("A", 1)))
    refused = f.post_raw(client, body)
    assert refused.status_code == 503
    assert "Retry-After" in refused.headers
    assert f.events(client) == []
    assert f.post(client, body)["status"] == "accepted"
    assert [row["quantity"] for row in f.ledger(client)] == [1]


def test_webhook_whose_statement_fails_is_kept_quarantined(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    if client.app.state.db.is_sqlite:  # type: ignore[attr-defined]
        pytest.skip("the driver-level statement is PostgreSQL's")
    monkeypatch.setattr(ledger_service, "_event_with_effect_sql", lambda _columns: "SELECT 1 / 0")
    body = json.dumps(f.received(("A", 1)))
    answer = f.post(client, body)
    assert answer["status"] == "quarantined"
    assert "could not be processed: DivisionByZero" in answer["detail"]
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
    if client.app.state.db.is_sqlite:  # type: ignore[attr-defined]
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
    if client.app.state.db.is_sqlite:  # type: ignore[attr-defined]
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
