"""Engines, transactions and column types shared by every feature.

Writes go through `Database.transaction()`, reads through `Database.snapshot()`. On SQLite the
write transaction starts with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
instead of failing half-way with "database is locked" when a reader upgrades to a writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Text,
    create_engine,
    event,
    exc,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")

# Identifiers of a stock position (tenant, location, stock location, product) compare byte for
# byte on PostgreSQL, as every text does on SQLite. Their indexes take an entry per ledger row,
# and with the "C" collation each comparison is a memcmp instead of a locale-aware strcoll,
# which made index upkeep about a quarter cheaper (docs/performance.md). Byte order is also
# code point order, so listings sort the same way on both backends.
PositionKey = Text().with_variant(Text(collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL stores `timestamptz`. SQLite has no time zone type, so values are stored as naive
    UTC, whose ISO text sorts chronologically, and made aware again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 (SQLAlchemy's signature)
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a `Z`, as every API answer and ERP document writes time."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is locked; the caller should retry later."""


def sqlalchemy_url(url: str) -> str:
    """Map the plain URL of the configuration to the driver this service uses."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _limit_exceeded(error: BaseException | None) -> bool:
    # SQLSTATE class 54, "program limit exceeded" (e.g. an index row over its maximum size):
    # psycopg files it under OperationalError, but the input is at fault, and a redelivery of
    # the same body would fail the same way forever.
    return str(getattr(error, "sqlstate", None) or "").startswith("54")


def refuses_input(error: exc.DBAPIError) -> bool:
    """True when PostgreSQL refused the values themselves: a program limit (class 54, e.g. an
    index entry too large) or a data exception (class 22, e.g. a value out of range). Any
    other error says something about the database or the code, not about this input."""
    return str(getattr(error.orig, "sqlstate", None) or "")[:2] in ("22", "54")


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means "try again later" rather than "this input or code is wrong"."""
    if isinstance(error, DatabaseUnavailable | exc.TimeoutError):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if isinstance(error, exc.OperationalError | exc.InterfaceError):
            return not _limit_exceeded(error.orig)
    return False


def _driver(conn: Connection) -> psycopg.Connection[tuple[Any, ...]]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def first_row(conn: Connection, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """PostgreSQL: run one statement on the driver's connection and return its first row.

    For intake's one statement per event, where SQLAlchemy's execution context and result
    metadata cost more client CPU than psycopg's own work (docs/performance.md). Errors get the
    treatment SQLAlchemy gives them: a lost connection is invalidated and the whole pool
    replaced (its other connections are likely lost too, as after a server restart); that and
    every error that means "try again later" (timeouts, deadlocks, lack of resources) is raised
    as `DatabaseUnavailable`; any other error propagates as psycopg raised it.
    """
    driver = _driver(conn)
    try:
        with driver.cursor() as cursor:
            return cursor.execute(sql, params).fetchone()
    except psycopg.Error as error:
        lost = driver.closed
        if lost:
            conn.invalidate(error)
            conn.engine.dispose(close=False)
        # Classified as SQLAlchemy would have raised it, by the one rule the service keeps.
        wrapped = exc.DBAPIError.instance(
            sql, None, error, psycopg.Error, hide_parameters=True, connection_invalidated=lost
        )
        if is_unavailable(wrapped):
            raise DatabaseUnavailable(str(error).splitlines()[0]) from error
        raise


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = sqlalchemy_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            poolclass=NullPool if url.endswith(":memory:") else None,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip on every request. A connection found dead is
        # answered 503 once (NewStore redelivers), then the whole pool is replaced.
        pool_pre_ping=False,
        pool_timeout=10,
        # A dead server must give a fast 503, never a hung webhook.
        connect_args={"connect_timeout": 5, "options": "-c statement_timeout=60000"},
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (SQLAlchemy's documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("writer") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine per process, with explicit write and read transactions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed when the block exits without an exception."""
        with self._connect() as conn:
            conn = conn.execution_options(writer=True)
            with conn.begin():
                yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which every statement commits on its own, with no BEGIN or COMMIT
        round trips: for writes that are a single statement each, hence atomic by themselves."""
        with self._connect() as conn:
            if self.is_sqlite:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            # Switched on the driver's connection rather than through SQLAlchemy's isolation
            # level option, whose bookkeeping on checkout and checkin cost intake as much CPU as
            # building the statement (docs/performance.md).
            driver = _driver(conn)
            driver.autocommit = True
            try:
                yield conn
            finally:
                if driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    driver.autocommit = False
                else:
                    conn.invalidate()  # broken, or left mid-statement: never back in the pool

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction, rolled back at the end."""
        with self._connect() as conn, conn.begin() as txn:
            yield conn
            txn.rollback()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except exc.SQLAlchemyError as error:
            if is_unavailable(error):
                raise DatabaseUnavailable(str(error).splitlines()[0]) from error
            raise

    def ping(self) -> None:
        with self.snapshot() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()
