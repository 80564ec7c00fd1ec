"""Synchronous SQLAlchemy access: the read side (`views/`), migrations and ops commands.

Writes go through `Database.transaction()`, reads through `Database.snapshot()`. The engine is
built by the backend's module (`storage.postgres`, `storage.sqlite`), which also decides how a
write transaction begins; this module names no dialect and no driver. Errors that mean "retry
later" leave as `DatabaseUnavailable`, values the database refuses as `InputRefused`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from inventory_sync.errors import (
    DatabaseRefusesUs,
    DatabaseUnavailable,
    InputRefused,
    SchemaBehind,
)

# SQLSTATE classes that mean "try again later": connection exception, transaction rollback
# (deadlock, serialization), insufficient resources, object not in prerequisite state (lock not
# available), operator intervention (shutdown, statement timeout), system error.
_TRY_LATER = ("08", "40", "53", "55", "57", "58")
# Data exception (a value out of range, say) and program limit exceeded (an index entry too
# large): the input is at fault, and the same input fails the same way forever. Drivers file
# the latter under OperationalError.
_REFUSED = ("22", "54")
# Undefined table or column: the schema is behind the code; once migrated, it works.
_SCHEMA_BEHIND = ("42P01", "42703")
# Invalid authorization (no such role, wrong password) and no such database.
_REFUSES_US = ("28000", "28P01", "3D000")
# SQLite's words for the same as _SCHEMA_BEHIND.
_SQLITE_BEHIND = ("no such table", "no such column")


def error_for(sqlstate: str | None) -> type[DatabaseUnavailable | InputRefused] | None:
    """The service's error for a PostgreSQL SQLSTATE, or None when it means a bug."""
    state = sqlstate or ""
    if state[:2] in _REFUSED:
        return InputRefused
    if state in _SCHEMA_BEHIND:
        return SchemaBehind
    if state in _REFUSES_US:
        return DatabaseRefusesUs
    if state[:2] in _TRY_LATER:
        return DatabaseUnavailable
    return None


# A connection refused before any SQLSTATE exists (psycopg reports none for it): the server's
# own words are all there is.
_REFUSED_AT_CONNECT = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
)


def mapped_error(error: exc.SQLAlchemyError) -> Exception | None:
    """`error` as the service's own error, or None to let it through (a bug, a constraint)."""
    if isinstance(error, exc.TimeoutError):
        return DatabaseUnavailable(str(error).splitlines()[0])
    if not isinstance(error, exc.DBAPIError):
        return None
    sqlstate = getattr(error.orig, "sqlstate", None)
    kind = error_for(sqlstate)
    first_line = str(error).splitlines()[0]
    if kind is None and sqlstate is None and isinstance(error, exc.OperationalError):
        said = str(error.orig)
        if "FATAL" in said and any(words in said for words in _REFUSED_AT_CONNECT):
            kind = DatabaseRefusesUs
    if kind is InputRefused:
        return InputRefused(f"{str(error.orig)[:300]} ({type(error.orig).__name__})")
    if kind is SchemaBehind or kind is DatabaseRefusesUs:
        return kind(str(error.orig).splitlines()[0])
    if kind is DatabaseUnavailable:
        return kind(first_line)
    # SQLite's errors carry no SQLSTATE: no such table, locked, disk I/O.
    if isinstance(error, exc.OperationalError) and str(error.orig).startswith(_SQLITE_BEHIND):
        return SchemaBehind(str(error.orig))
    if error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError):
        return DatabaseUnavailable(first_line)
    return None


class Database:
    """One engine per process, with explicit write and read transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed when the block exits without an exception."""
        with self._connect() as conn:
            conn = conn.execution_options(writer=True)
            with conn.begin():
                yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction, rolled back at the end, that sees one state of the database
        from its first statement to its last (a CSV export's pages, the totals of one scrape)."""
        with self._connect() as conn:
            conn = conn.execution_options(snapshot=True)
            with conn.begin() as txn:
                yield conn
                txn.rollback()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except exc.SQLAlchemyError as error:
            mapped = mapped_error(error)
            if mapped is None:
                raise
            raise mapped from error

    def ping(self) -> None:
        with self.snapshot() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()
