"""Alembic migrations: they build the schema from nothing on both backends, they match the
table definitions the code uses, and they can be undone and redone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select

from inventory_sync.ledger.effects import movement_id
from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import metadata
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        db = open_database(f"sqlite:///{tmp_path / 'empty.db'}")
        yield db
        db.dispose()
        return
    worker_url: str = request.getfixturevalue("postgres_url")  # skips when unreachable
    base, _, name = worker_url.rpartition("/")
    name = f"{name}_migrations"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    db = open_database(f"{base}/{name}", pool_size=1)
    yield db
    db.dispose()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def differences(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


class TestMigrations:
    def test_upgrade_head_on_an_empty_database_matches_the_models(self, empty_db: Database) -> None:
        assert tables(empty_db) == set()
        assert migrate.schema_problem(empty_db) is not None

        migrate.upgrade(empty_db)

        assert tables(empty_db) == set(metadata.tables)
        assert migrate.schema_problem(empty_db) is None
        with empty_db.snapshot() as conn:
            assert migrate.current(conn) == migrate.head()
        # The tables the code defines are exactly those the migrations build.
        assert differences(empty_db) == []
        # Running it again (every SQLite start does) changes nothing.
        migrate.upgrade(empty_db)
        assert migrate.schema_problem(empty_db) is None

    def test_downgrade_to_base_and_upgrade_again(self, empty_db: Database) -> None:
        migrate.upgrade(empty_db)
        command.downgrade(migrate.config(empty_db), "base")
        assert tables(empty_db) == set()
        with empty_db.snapshot() as conn:
            assert migrate.current(conn) is None

        migrate.upgrade(empty_db)
        assert tables(empty_db) == set(metadata.tables)
        assert differences(empty_db) == []

    def test_rows_survive_every_migration_down_and_up(self, empty_db: Database) -> None:
        # On SQLite a batch migration rebuilds a table with its rows, including tables that
        # other rows refer to (an outbox message with delivery attempts).
        migrate.upgrade(empty_db)
        with empty_db.transaction() as conn:
            for table, row in _one_row_each():
                conn.execute(insert(metadata.tables[table]), row)
        before = _counts(empty_db)
        assert set(before.values()) == {1}

        command.downgrade(migrate.config(empty_db), "e7a4a9230f97")
        with empty_db.snapshot() as conn:
            # The movements' event name, read from their event since 4dd283ddba95, comes back.
            names = conn.exec_driver_sql("SELECT event_name FROM ledger_movement").scalars().all()
        assert names == ["inventory_transaction.items_received"]
        command.downgrade(migrate.config(empty_db), "44cc10527e1e")
        assert _counts(empty_db) == before
        migrate.upgrade(empty_db)
        assert _counts(empty_db) == before
        assert differences(empty_db) == []

    def test_ledger_ids_become_the_movements_places(self, empty_db: Database) -> None:
        command.upgrade(migrate.config(empty_db), "4dd283ddba95")
        with empty_db.transaction() as conn:
            conn.execute(insert(metadata.tables["inbound_event"]), _one_row_each()[0][1])
            for line, leg in ((1, 0), (2, 0), (2, 1)):
                # No id: drawn from the sequence, as before.
                conn.exec_driver_sql(
                    "INSERT INTO ledger_movement (event_id, tenant, location_id, stock_location, "
                    "product_id, quantity, kind, occurred_at, recorded_at, line_number, leg, "
                    "\"references\") VALUES (1, 'acme', 'L', 'main', 'P', 1, 'receipt', "
                    f"'2024-05-14 09:32:00', '2024-05-14 09:32:00', {line}, {leg}, '{{}}')"
                )
        migrate.upgrade(empty_db)
        with empty_db.snapshot() as conn:
            ids = conn.exec_driver_sql("SELECT id FROM ledger_movement ORDER BY id").scalars()
            assert list(ids) == [movement_id(1, 1, 0), movement_id(1, 2, 0), movement_id(1, 2, 1)]


def _counts(db: Database) -> dict[str, int]:
    with db.snapshot() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(metadata.tables[name])).scalar_one()
            for name in _TABLES
        }


_TABLES = (
    "inbound_event",
    "ledger_movement",
    "count_observation",
    "shipment_line",
    "outbox_message",
    "sync_attempt",
)


def _one_row_each() -> list[tuple[str, dict[str, object]]]:
    now = datetime(2024, 5, 14, 9, 32, tzinfo=UTC)
    position = {"tenant": "acme", "location_id": "L", "stock_location": "main", "product_id": "P"}
    return [
        (
            "inbound_event",
            {
                "id": 1,
                "slot": "s",
                "name": "inventory_transaction.items_received",
                "status": "accepted",
                "raw_body": b"{}",
                "received_at": now,
            },
        ),
        (
            "ledger_movement",
            {
                "id": movement_id(1, 1, 0),
                "event_id": 1,
                **position,
                "quantity": 1,
                "kind": "receipt",
                "occurred_at": now,
                "recorded_at": now,
                "line_number": 1,
                "leg": 0,
                "references": {},
            },
        ),
        (
            "count_observation",
            {
                "event_id": 1,
                **position,
                "count_id": "c",
                "chunk_number": 1,
                "line_number": 1,
                "counted": 1,
                "stock_on_hand": 1,
                "counted_at": now,
            },
        ),
        (
            "shipment_line",
            {
                "event_id": 1,
                "tenant": "acme",
                "asn_id": "a",
                "chunk_number": 1,
                "line_number": 1,
                "origin_location_id": "L",
                "product_id": "P",
                "quantity": 1,
                "shipped_at": now,
            },
        ),
        (
            "outbox_message",
            {
                "id": "m",
                "event_id": 1,
                "tenant": "acme",
                "type": "inventory.receipt",
                "location_id": "L",
                "document": "{}",
                "status": "pending",
                "attempts": 1,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        ),
        (
            "sync_attempt",
            {
                "message_id": "m",
                "attempted_at": now,
                "duration_ms": 1,
                "status_code": 503,
                "outcome": "retry",
            },
        ),
    ]
