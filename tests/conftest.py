"""Test databases: every test runs on SQLite and on real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each xdist worker gets its own database, created fresh and migrated with Alembic once per
session; tests then commit for real and the tables are emptied after each one. Where PostgreSQL
is unreachable its tests are skipped with the reason, unless INVSYNC_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import metadata
from tests import factories

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("INVSYNC_REQUIRE_POSTGRES") == "1"


def _database_name() -> str:
    # Unique per process: xdist workers, and several test runs at once, never share one.
    return f"invsync_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A freshly created, migrated PostgreSQL database of this worker's own."""
    admin_dsn = POSTGRES_URL
    name = _database_name()
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        if REQUIRE_POSTGRES:
            pytest.fail(
                f"PostgreSQL required (INVSYNC_REQUIRE_POSTGRES=1) but unreachable: {error}"
            )
        pytest.skip(f"PostgreSQL unreachable at {admin_dsn}: {error}")
    base, _, _ = admin_dsn.rpartition("/")
    url = f"{base}/{name}"
    db = open_database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    yield url
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = open_database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A migrated, empty database of either backend; emptied again after the test."""
    if request.param == "sqlite":
        path = tmp_path / "invsync.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    db = open_database(url, pool_size=1)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with db.transaction() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        webhook_keys=[factories.WEBHOOK_KEY, "previous-webhook-key"],
        ops_tokens=[factories.READ_TOKEN],
        admin_tokens=[factories.ADMIN_TOKEN],
        return_locations={"2": "damaged"},
        log_format="json",
        _env_file=None,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.database_url, pool_size=4)
    yield database
    database.dispose()
