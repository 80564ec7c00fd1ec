"""Schema migrations with Alembic, from the command line, the API start-up and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from inventory_sync.storage.database import Database, mapped_error


def script_location() -> Path:
    """`migrations/` of the repository, or its copy inside an installed wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_migrations", package.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("cannot find the migrations folder")


def config(db: Database | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    if db is not None:
        cfg.attributes["engine"] = db.engine
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    try:
        command.upgrade(config(db), revision)
    except exc.SQLAlchemyError as error:
        # Alembic uses the engine directly: its errors are mapped here, as `Database` maps its
        # own, so a database that is away or refuses us is one line, not a traceback.
        mapped = mapped_error(error)
        if mapped is None:
            raise
        raise mapped from error


def schema_problem(db: Database) -> str | None:
    """Why the schema cannot serve traffic, or None when it is at head."""
    with db.snapshot() as conn:
        found = current(conn)
    expected = head()
    if found == expected:
        return None
    if found is None:
        return f"schema not created; run `inventory-sync db upgrade` (head is {expected})"
    return f"schema at {found}, behind head {expected}; run `inventory-sync db upgrade`"
