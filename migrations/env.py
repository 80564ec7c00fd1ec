"""Alembic environment: the service's own metadata and database URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from inventory_sync.settings import load_settings
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import metadata

config = context.config
if config.config_file_name is not None and not config.attributes.get("engine"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite's procedure for schema changes: batch mode rebuilds a table by copying it and
    dropping the original, and with foreign keys enforced, dropping a table other rows refer to
    fails. Keys go off outside any transaction (the pragma is ignored inside one) and are
    checked before the commit instead."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    owned = engine is None
    if owned:
        engine = open_database(load_settings().database_url).engine
    try:
        # A writer from its first statement (SQLite: BEGIN IMMEDIATE), so that two processes
        # migrating at once wait for each other instead of failing on a lock upgrade.
        with (
            engine.connect().execution_options(writer=True) as connection,
            _sqlite_foreign_keys_off(connection),
        ):
            _run(connection)
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
