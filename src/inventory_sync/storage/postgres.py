"""The PostgreSQL store: asyncpg for intake, replay and delivery; psycopg 3 for SQLAlchemy.

Intake is the hot path, so an accepted event is ONE statement on an asyncpg connection: data-
modifying CTEs insert the inbox row and, only if its slot was free, the ledger rows, the count
observations or shipment lines, and the outbox message. A single statement is atomic by itself
and needs no BEGIN or COMMIT, so intake costs one round trip, and rows go in as typed arrays
(`unnest`), which the server reads without parsing text. A replay runs the same tail after an
`UPDATE` of the event that only matches while it is still quarantined.

The read side (`views/`), migrations and ops commands use SQLAlchemy with psycopg 3, through
`engine()`.

Driver errors are mapped here, once (`_errors`): lost connections, timeouts, lack of resources
and a schema not yet created are `DatabaseUnavailable`; values the server refuses (SQLSTATE
classes 22 and 54) are `InputRefused`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from inventory_sync.clock import utcnow
from inventory_sync.credentials import Generated, digest
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.ledger.effects import SPAN
from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database, error_for
from inventory_sync.storage.store import (
    VERDICT_COLUMNS,
    Claim,
    EventRow,
    Finished,
    Holder,
    Recorded,
    SlotTaken,
    StoredEvent,
    Verdict,
    Write,
)

log = logging.getLogger("inventory_sync.storage")

# Seconds: a dead server must give a fast 503, never a hung webhook.
CONNECT_TIMEOUT = 5
ACQUIRE_TIMEOUT = 10
STATEMENT_TIMEOUT_MS = 60_000


def _plain(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith(("postgresql", "postgres")) else url


def engine(url: str, *, pool_size: int = 5) -> Engine:
    """SQLAlchemy's engine for `url`, on psycopg 3."""
    built = create_engine(
        "postgresql+psycopg://" + _plain(url).removeprefix("postgresql://"),
        pool_size=pool_size,
        max_overflow=2 * pool_size,
        pool_pre_ping=True,
        pool_timeout=ACQUIRE_TIMEOUT,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        },
    )

    @event.listens_for(built, "begin")
    def _on_begin(connection: Connection) -> None:
        # READ COMMITTED gives each statement its own state; a snapshot's must share one.
        if connection.get_execution_options().get("snapshot"):
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    return built


# -- errors --------------------------------------------------------------------------------------


@asynccontextmanager
async def _errors(pool: asyncpg.Pool | None = None) -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.PostgresError as error:
        kind = error_for(error.sqlstate)
        if kind is None:
            raise
        if (error.sqlstate or "").startswith("08") and pool is not None:
            # A lost connection: the others are likely lost too (a server restart).
            await pool.expire_connections()
        raise kind(f"{str(error)[:300]} ({type(error).__name__})") from error
    except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError) as error:
        # The connection is gone or in a state the driver cannot go on from (a session the
        # server ended while it was idle, say): renew the pool, and let the caller retry.
        if pool is not None:
            await pool.expire_connections()
        raise DatabaseUnavailable(f"{type(error).__name__}: {error}") from error


# -- the intake statement ------------------------------------------------------------------------


class _Numbered(dict[str, str]):
    """For `str.format_map`: `{name}` becomes `$1`, `$2`, ... in order of first use."""

    def __missing__(self, name: str) -> str:
        self[name] = f"${len(self) + 1}"
        return self[name]


_EVENT_COLUMNS = (*VERDICT_COLUMNS, "raw_body", "content_type", "received_at")
_REPLAY_COLUMNS = (*VERDICT_COLUMNS, "replayed_at")

_INSERT = (
    "INSERT INTO inbound_event ({columns}) VALUES ({values}) "
    "ON CONFLICT (slot) DO NOTHING RETURNING id"
).format(
    columns=", ".join(_EVENT_COLUMNS),
    values=", ".join("{e_%s}" % c for c in _EVENT_COLUMNS),  # noqa: UP031 (a template)
)
_UPDATE = (
    "UPDATE inbound_event SET {assignments} "
    "WHERE id = {event_id}::bigint AND status = 'quarantined' RETURNING id"
).format(
    assignments=", ".join("%s = {v_%s}" % (c, c) for c in _REPLAY_COLUMNS),  # noqa: UP031
    event_id="{event_id}",
)

_MOVEMENTS = """mv AS (
    INSERT INTO ledger_movement (id, event_id, tenant, location_id, stock_location, product_id,
        quantity, kind, occurred_at, recorded_at, line_number, leg, "references")
    SELECT ev.id * {span}::bigint + 2 * COALESCE(t.n, t.i) + COALESCE(t.g, 0), ev.id,
        {tenant}::text, {location_id}::text, COALESCE(t.s, {stock_location}::text), t.p, t.q,
        {kind}::text, {occurred_at}::timestamptz, {recorded_at}::timestamptz,
        COALESCE(t.n, t.i), COALESCE(t.g, 0), COALESCE(t.r, {references}::json)
    FROM ev CROSS JOIN unnest({m_locations}::text[], {m_products}::text[], {m_quantities}::bigint[],
        {m_lines}::integer[], {m_legs}::smallint[], {m_references}::json[])
        WITH ORDINALITY AS t (s, p, q, n, g, r, i)
)"""
_COUNTS = """co AS (
    INSERT INTO count_observation (event_id, tenant, count_id, chunk_number, line_number,
        location_id, stock_location, product_id, counted, stock_on_hand, counted_at)
    SELECT ev.id, {tenant}::text, {payload_id}::text, {chunk_number}::integer, t.i,
        {location_id}::text, COALESCE(t.s, {c_location}::text), t.p, t.c, t.h,
        {occurred_at}::timestamptz
    FROM ev CROSS JOIN unnest({c_locations}::text[], {c_products}::text[], {c_counted}::bigint[],
        {c_on_record}::bigint[]) WITH ORDINALITY AS t (s, p, c, h, i)
    ORDER BY t.i
)"""
_SHIPMENT = """sl AS (
    INSERT INTO shipment_line (event_id, tenant, asn_id, chunk_number, line_number,
        origin_location_id, destination_location_id, transfer_order_ref, shipment_ref,
        product_id, quantity, shipped_at)
    SELECT ev.id, {tenant}::text, {payload_id}::text, {chunk_number}::integer, t.i,
        {location_id}::text, {destination}::text, {transfer_order_ref}::text,
        {shipment_ref}::text, t.p, t.q, {occurred_at}::timestamptz
    FROM ev CROSS JOIN unnest({s_products}::text[], {s_quantities}::bigint[])
        WITH ORDINALITY AS t (p, q, i)
    ORDER BY t.i
)"""
_OUTBOX = """ob AS (
    INSERT INTO outbox_message (id, event_id, tenant, type, location_id, document, status,
        attempts, next_attempt_at, created_at, updated_at)
    SELECT {message_id}::text, ev.id, {tenant}::text, {document_type}::text, {location_id}::text,
        {document}::text, 'pending', 0, {recorded_at}::timestamptz, {recorded_at}::timestamptz,
        {recorded_at}::timestamptz
    FROM ev
)"""
_INSERTED = (
    "SELECT id, NULL::text, NULL::text, NULL::text FROM ev UNION ALL "
    "SELECT id, content_hash, status, error FROM inbound_event "
    "WHERE slot = {e_slot} AND NOT EXISTS (SELECT FROM ev)"
)


@functools.cache
def _statement(
    head: str, movements: bool, counts: bool, shipment: bool, outbox: bool
) -> tuple[str, list[str]]:
    """The SQL for one shape of write, with the names of its parameters in order."""
    parts = [f"ev AS ({head})"]
    if movements:
        parts.append(_MOVEMENTS)
    if counts:
        parts.append(_COUNTS)
    if shipment:
        parts.append(_SHIPMENT)
    if outbox:
        parts.append(_OUTBOX)
    tail = _INSERTED if head == _INSERT else "SELECT id FROM ev"
    numbered = _Numbered()
    sql = ("WITH " + ",\n".join(parts) + "\n" + tail).format_map(numbered)
    return sql, list(numbered)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _write_values(write: Write, recorded_at: datetime) -> dict[str, Any]:
    source, effect, document = write.source, write.effect, write.document
    values: dict[str, Any] = {
        "tenant": source.tenant,
        "location_id": effect.location_id,
        "occurred_at": effect.occurred_at,
        "recorded_at": recorded_at,
        "payload_id": source.payload_id,
        "chunk_number": source.chunk_number,
    }
    if document is not None:
        values.update(
            message_id=document.message_id, document_type=document.type, document=document.body
        )
    # unnest pads shorter arrays with NULL, so a column that is the same on every row goes as
    # one value and an empty array, and the lines numbered 1, 2, ... as none: each array costs
    # the client and the server a pass over every row.
    m = effect.movements
    if m is not None:
        locations, location = _column(m.stock_location)
        values.update(
            span=SPAN,
            kind=m.kind.value,
            references=_json(m.references),
            stock_location=location,
            m_locations=locations,
            m_products=m.product_id,
            m_quantities=m.quantity,
            m_lines=[] if _numbered(m.line_number) else m.line_number,
            m_legs=m.leg or [],
            m_references=[None if r is None else _json(r) for r in m.line_references]
            if m.line_references is not None
            else [],
        )
    c = effect.counts
    if c is not None:
        assert _numbered(c.line_number)
        locations, location = _column(c.stock_location)
        values.update(
            c_location=location,
            c_locations=locations,
            c_products=c.product_id,
            c_counted=c.counted,
            c_on_record=c.stock_on_hand,
        )
    s = effect.shipment
    if s is not None:
        assert _numbered(s.line_number)
        values.update(
            destination=s.destination_location_id,
            transfer_order_ref=s.transfer_order_ref,
            shipment_ref=s.shipment_ref,
            s_products=s.product_id,
            s_quantities=s.quantity,
        )
    return values


def _column(values: list[str]) -> tuple[list[str], str | None]:
    """(values, None), or ([], the value) when every row has the same."""
    if values and values.count(values[0]) == len(values):
        return [], values[0]
    return values, None


def _numbered(lines: list[int]) -> bool:
    return lines == list(range(1, len(lines) + 1))


def _write_statement(
    head: str, write: Write, recorded_at: datetime, head_values: dict[str, Any]
) -> tuple[str, list[Any]]:
    effect = write.effect
    sql, names = _statement(
        head,
        effect.movements is not None,
        effect.counts is not None,
        effect.shipment is not None,
        write.document is not None,
    )
    values = _write_values(write, recorded_at)
    values.update(head_values)
    return sql, [values[name] for name in names]


_INSERT_ONLY = _INSERT.format_map(_Numbered())  # parameters in `_EVENT_COLUMNS` order
_HOLDER = "SELECT id, content_hash, status, error FROM inbound_event WHERE slot = $1"
_EVENT = (
    "SELECT id, slot, status, name, content_hash, raw_body, content_type, received_at "
    "FROM inbound_event WHERE id = $1"
)

# -- the outbox ------------------------------------------------------------------------------------

_CLAIM = """
UPDATE outbox_message SET claimed_by = $1, claimed_until = $2
WHERE id IN (
    SELECT id FROM outbox_message
    WHERE status = 'pending' AND next_attempt_at <= $3
        AND (claimed_until IS NULL OR claimed_until < $3)
    ORDER BY next_attempt_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
RETURNING id, document, attempts, updated_at
"""

# Every attempt logged, in order, and each message's new state stored where `worker` still
# holds its claim: one statement whatever the batch size.
_FINISH = """
WITH batch AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::integer[], $5::timestamptz[],
        $6::timestamptz[], $7::integer[], $8::integer[], $9::text[], $10::text[])
        WITH ORDINALITY AS b (id, status, attempts, next_attempt_at, attempted_at, duration_ms,
            status_code, error, outcome, n)
), logged AS (
    INSERT INTO sync_attempt (message_id, attempted_at, duration_ms, status_code, error,
        outcome, worker)
    SELECT id, attempted_at, duration_ms, status_code, error, outcome, $1 FROM batch ORDER BY n
)
UPDATE outbox_message AS m SET
    status = b.status,
    attempts = b.attempts,
    claimed_by = NULL,
    claimed_until = NULL,
    updated_at = b.attempted_at,
    last_status_code = b.status_code,
    last_error = b.error,
    delivered_at = CASE WHEN b.status = 'delivered' THEN b.attempted_at ELSE m.delivered_at END,
    next_attempt_at = COALESCE(b.next_attempt_at, m.next_attempt_at)
FROM batch AS b
WHERE m.id = b.id AND m.claimed_by = $1 AND m.status = 'pending'
RETURNING m.id
"""

_RELEASE = """
UPDATE outbox_message SET claimed_by = NULL, claimed_until = NULL
WHERE id = ANY($1::text[]) AND claimed_by = $2
"""

# A free slot below the limit, taken: a row that is absent or whose holding has run out. Two
# statements choosing the same slot meet on its primary key; the second re-checks the row the
# first wrote, finds it held and takes nothing (its caller asks again).
_TAKE_PERMIT = """
WITH free AS (
    SELECT s AS slot FROM generate_series(0, $1::integer - 1) AS s
    WHERE NOT EXISTS (SELECT FROM erp_permit AS p WHERE p.slot = s AND p.held_until > $3)
    ORDER BY random() LIMIT 1
)
INSERT INTO erp_permit (slot, holder, held_until) SELECT slot, $2, $4 FROM free
ON CONFLICT (slot) DO UPDATE SET holder = EXCLUDED.holder, held_until = EXCLUDED.held_until
WHERE erp_permit.held_until <= $3
RETURNING slot
"""

_RETURN_PERMIT = "DELETE FROM erp_permit WHERE slot = $1 AND holder = $2"

_CREDENTIAL = """
WITH created AS (
    INSERT INTO generated_credential (kind, secret_sha256, created_at) VALUES ($1, $2, $3)
    ON CONFLICT (kind) DO NOTHING RETURNING secret_sha256
)
SELECT secret_sha256, true FROM created UNION ALL
SELECT secret_sha256, false FROM generated_credential
WHERE kind = $1 AND NOT EXISTS (SELECT FROM created)
"""


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing. The store's statements
    leave no session state (no SET, LISTEN, cursor or advisory lock), and asyncpg rolls back an
    open transaction itself; its default reset is four more statements per request."""


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, database: Database) -> None:
        self._pool = pool
        self.database = database

    @classmethod
    async def open(cls, url: str, *, pool_size: int) -> PostgresStore:
        # No connection is made here (min_size 0): a service started while its database is
        # down answers 503 until it is back.
        pool = await asyncpg.create_pool(
            _plain(url),
            min_size=0,
            max_size=pool_size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=STATEMENT_TIMEOUT_MS / 1000 + 5,
            server_settings={"statement_timeout": str(STATEMENT_TIMEOUT_MS)},
            reset=_keep_session,
        )
        return cls(pool, Database(engine(url)))

    async def prepare(self) -> str | None:
        # Through asyncpg first: its errors carry the SQLSTATE that tells a refused login or a
        # missing database (DatabaseRefusesUs) from one that is only unreachable.
        await self._fetch("SELECT 1", ())
        # Admins migrate PostgreSQL (`inventory-sync db upgrade`); the service only checks.
        return await asyncio.to_thread(migrate.schema_problem, self.database)

    async def close(self) -> None:
        await self._pool.close()
        await asyncio.to_thread(self.database.dispose)

    async def _fetch(self, sql: str, args: list[Any] | tuple[Any, ...]) -> list[asyncpg.Record]:
        async with _errors(self._pool):
            result: list[asyncpg.Record] = await self._pool.fetch(sql, *args, timeout=None)
            return result

    async def record_event(self, row: EventRow, write: Write | None = None) -> Recorded:
        head = {"e_" + name: value for name, value in row.columns().items()}
        if write is None:
            rows = await self._fetch(_INSERT_ONLY, list(head.values()))
            if rows:
                return Recorded(rows[0][0])
        else:
            sql, args = _write_statement(_INSERT, write, row.received_at, head)
            rows = await self._fetch(sql, args)
            if rows:
                event_id, content_hash, status, error = rows[0]
                if status is None:
                    return Recorded(event_id)
                return Recorded(event_id, Holder(event_id, content_hash, status, error))
        # Taken by a transaction that committed after the statement began, whose row its
        # snapshot cannot see (or, without a write, taken at all).
        holder = await self.slot_holder(row.slot)
        if holder is None:  # pragma: no cover - a slot is never freed
            raise DatabaseUnavailable("the slot's holder vanished; retry")
        return Recorded(holder.id, holder)

    async def slot_holder(self, slot: str) -> Holder | None:
        rows = await self._fetch(_HOLDER, (slot,))
        return Holder(*rows[0]) if rows else None

    async def event(self, event_id: int) -> StoredEvent | None:
        rows = await self._fetch(_EVENT, (event_id,))
        return StoredEvent(*rows[0]) if rows else None

    async def apply_replay(
        self, event_id: int, verdict: Verdict, replayed_at: datetime, write: Write | None
    ) -> bool:
        head = {"v_" + name: value for name, value in verdict.columns().items()}
        head.update(v_replayed_at=replayed_at, event_id=event_id)
        if write is None:
            numbered = _Numbered()
            sql = _UPDATE.format_map(numbered)
            args = [head[name] for name in numbered]
        else:
            sql, args = _write_statement(_UPDATE, write, replayed_at, head)
        try:
            rows = await self._fetch(sql, args)
        except asyncpg.UniqueViolationError as error:
            holder = await self.slot_holder(verdict.slot)
            if holder is None:  # the holder went away meanwhile: let the caller retry
                raise DatabaseUnavailable("slot conflict; retry") from error
            raise SlotTaken(holder.id) from error
        return bool(rows)

    async def set_replay_error(self, event_id: int, error: str, replayed_at: datetime) -> None:
        await self._fetch(
            "UPDATE inbound_event SET error = $2, replayed_at = $3 WHERE id = $1",
            (event_id, error, replayed_at),
        )

    async def ensure_credential(self, kind: str, secret: str) -> Generated:
        for _ in range(3):
            rows = await self._fetch(_CREDENTIAL, (kind, digest(secret), utcnow()))
            if rows:
                stored, created = rows[0]
                return Generated(kind, secret if created else None, stored)
            # Created by a process whose commit this statement's snapshot could not see.
        raise DatabaseUnavailable(f"could not read the generated {kind}")

    async def claim_due(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Claim]:
        rows = await self._fetch(_CLAIM, (worker, lease_until, now, limit))
        return [Claim(r[0], r[1], r[2], r[3], lease_until) for r in rows]

    async def finish_many(self, batch: list[Finished], worker: str) -> set[str]:
        if not batch:
            return set()
        columns: list[Callable[[Finished], Any]] = [
            lambda f: f.claim.id,
            lambda f: f.status,
            lambda f: f.attempts,
            lambda f: f.next_attempt_at,
            lambda f: f.attempt.attempted_at,
            lambda f: f.attempt.duration_ms,
            lambda f: f.attempt.status_code,
            lambda f: f.attempt.error,
            lambda f: f.attempt.outcome,
        ]
        args = [worker, *([get(f) for f in batch] for get in columns)]
        rows = await self._fetch(_FINISH, args)
        return {r[0] for r in rows}

    async def release(self, ids: list[str], worker: str) -> int:
        if not ids:
            return 0
        async with _errors(self._pool):
            status: str = await self._pool.execute(_RELEASE, ids, worker)
        return int(status.rsplit(" ", 1)[-1])

    async def take_permit(
        self, limit: int, holder: str, now: datetime, held_until: datetime
    ) -> int | None:
        rows = await self._fetch(_TAKE_PERMIT, (limit, holder, now, held_until))
        return int(rows[0][0]) if rows else None

    async def return_permit(self, slot: int, holder: str) -> None:
        async with _errors(self._pool):
            await self._pool.execute(_RETURN_PERMIT, slot, holder)
