"""Alembic migrations: they build the schema from nothing on both backends, they match the
table definitions the code uses, and they can be undone and redone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from inventory_sync import migrate
from inventory_sync.db import Database
from inventory_sync.schema import metadata
from tests.conftest import POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
        yield db
        db.dispose()
        return
    worker_url: str = request.getfixturevalue("postgres_url")  # skips when unreachable
    base, _, name = worker_url.rpartition("/")
    name = f"{name}_migrations"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(f"{base}/{name}", pool_size=1)
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
