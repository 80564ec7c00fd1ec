"""The embedded SQLite store: the default with no configuration, one process on one machine.

SQLite runs in the process, so there are no round trips to save: each write is a plain
transaction of SQLAlchemy Core statements, run in a thread so the event loop stays free. A write
transaction starts with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of
failing half-way with "database is locked" when a reader upgrades to a writer; that also
serialises the ERP worker's claims, which PostgreSQL does with `SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    bindparam,
    create_engine,
    delete,
    event,
    exc,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from inventory_sync.clock import utcnow
from inventory_sync.credentials import Generated, digest
from inventory_sync.ledger.effects import movement_id
from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import (
    DELIVERED,
    PENDING,
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
from inventory_sync.storage.tables import (
    count_observation,
    erp_permit,
    generated_credential,
    inbound_event,
    ledger_movement,
    outbox_message,
    shipment_line,
    sync_attempt,
)

T = TypeVar("T")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def engine(url: str) -> Engine:
    """SQLAlchemy's engine for `sqlite:///path`, configured as the service needs it."""
    built = create_engine(
        url,
        poolclass=NullPool if url.endswith(":memory:") else None,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @event.listens_for(built, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (SQLAlchemy's documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's own lower() folds ASCII only; searches "in any case" need every letter folded,
        # as on PostgreSQL.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(built, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("writer") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return built


_INSERT_EVENT = (
    sqlite_insert(inbound_event)
    .on_conflict_do_nothing(index_elements=["slot"])
    .returning(inbound_event.c.id)
)
_HOLDER = select(
    inbound_event.c.id, inbound_event.c.content_hash, inbound_event.c.status, inbound_event.c.error
).where(inbound_event.c.slot == bindparam("slot"))


def _write(conn: Connection, event_id: int, write: Write, recorded_at: datetime) -> None:
    """The rows and the outbox message of an accepted event."""
    source, effect, document = write.source, write.effect, write.document
    if effect.movements is not None and len(effect.movements):
        conn.execute(
            insert(ledger_movement),
            [
                {
                    "id": movement_id(event_id, m.line_number, m.leg),
                    "event_id": event_id,
                    "tenant": source.tenant,
                    "location_id": effect.location_id,
                    "stock_location": m.stock_location,
                    "product_id": m.product_id,
                    "quantity": m.quantity,
                    "kind": effect.movements.kind.value,
                    "occurred_at": effect.occurred_at,
                    "recorded_at": recorded_at,
                    "line_number": m.line_number,
                    "leg": m.leg,
                    "references": m.references,
                }
                for m in effect.movements
            ],
        )
    counts = effect.counts
    if counts is not None and len(counts):
        conn.execute(
            insert(count_observation),
            [
                {
                    "event_id": event_id,
                    "tenant": source.tenant,
                    "count_id": source.payload_id,
                    "chunk_number": source.chunk_number,
                    "line_number": n,
                    "location_id": effect.location_id,
                    "stock_location": where,
                    "product_id": product,
                    "counted": counted,
                    "stock_on_hand": on_record,
                    "counted_at": effect.occurred_at,
                }
                for where, product, counted, on_record, n in zip(
                    counts.stock_location,
                    counts.product_id,
                    counts.counted,
                    counts.stock_on_hand,
                    counts.line_number,
                    strict=True,
                )
            ],
        )
    shipment = effect.shipment
    if shipment is not None and len(shipment):
        conn.execute(
            insert(shipment_line),
            [
                {
                    "event_id": event_id,
                    "tenant": source.tenant,
                    "asn_id": source.payload_id,
                    "chunk_number": source.chunk_number,
                    "line_number": n,
                    "origin_location_id": effect.location_id,
                    "destination_location_id": shipment.destination_location_id,
                    "transfer_order_ref": shipment.transfer_order_ref,
                    "shipment_ref": shipment.shipment_ref,
                    "product_id": product,
                    "quantity": quantity,
                    "shipped_at": effect.occurred_at,
                }
                for product, quantity, n in zip(
                    shipment.product_id, shipment.quantity, shipment.line_number, strict=True
                )
            ],
        )
    if document is None:
        return
    conn.execute(
        insert(outbox_message).values(
            id=document.message_id,
            event_id=event_id,
            tenant=source.tenant,
            type=document.type,
            location_id=effect.location_id,
            document=document.body,
            status=PENDING,
            attempts=0,
            next_attempt_at=recorded_at,
            created_at=recorded_at,
            updated_at=recorded_at,
        )
    )


class SqliteStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    async def prepare(self) -> str | None:
        # The embedded default creates and upgrades its own schema.
        await self._run(lambda: migrate.upgrade(self.database))
        return None

    async def close(self) -> None:
        await self._run(self.database.dispose)

    async def record_event(self, row: EventRow, write: Write | None = None) -> Recorded:
        def record() -> Recorded:
            with self.database.transaction() as conn:
                event_id = conn.execute(_INSERT_EVENT, row.columns()).scalar()
                if event_id is None:
                    holder = Holder(*conn.execute(_HOLDER, {"slot": row.slot}).one())
                    return Recorded(holder.id, holder)
                if write is not None:
                    _write(conn, event_id, write, row.received_at)
                return Recorded(event_id)

        return await self._run(record)

    async def slot_holder(self, slot: str) -> Holder | None:
        def find() -> Holder | None:
            with self.database.snapshot() as conn:
                row = conn.execute(_HOLDER, {"slot": slot}).one_or_none()
            return None if row is None else Holder(*row)

        return await self._run(find)

    async def event(self, event_id: int) -> StoredEvent | None:
        e = inbound_event

        def find() -> StoredEvent | None:
            with self.database.snapshot() as conn:
                row = conn.execute(
                    select(
                        e.c.id,
                        e.c.slot,
                        e.c.status,
                        e.c.name,
                        e.c.content_hash,
                        e.c.raw_body,
                        e.c.content_type,
                        e.c.received_at,
                    ).where(e.c.id == event_id)
                ).one_or_none()
            return None if row is None else StoredEvent(*row)

        return await self._run(find)

    async def apply_replay(
        self, event_id: int, verdict: Verdict, replayed_at: datetime, write: Write | None
    ) -> bool:
        e = inbound_event

        def apply() -> bool:
            with self.database.transaction() as conn:
                changed = conn.execute(
                    update(e)
                    .where(e.c.id == event_id, e.c.status == "quarantined")
                    .values(**verdict.columns(), replayed_at=replayed_at)
                ).rowcount
                if changed and write is not None:
                    _write(conn, event_id, write, replayed_at)
                return bool(changed)

        try:
            return await self._run(apply)
        except exc.IntegrityError as error:
            holder = await self.slot_holder(verdict.slot)
            if holder is None:
                raise
            raise SlotTaken(holder.id) from error

    async def set_replay_error(self, event_id: int, error: str, replayed_at: datetime) -> None:
        def keep() -> None:
            with self.database.transaction() as conn:
                conn.execute(
                    update(inbound_event)
                    .where(inbound_event.c.id == event_id)
                    .values(error=error, replayed_at=replayed_at)
                )

        await self._run(keep)

    async def ensure_credential(self, kind: str, secret: str) -> Generated:
        c = generated_credential

        def ensure() -> Generated:
            with self.database.transaction() as conn:
                created = conn.execute(
                    sqlite_insert(c)
                    .values(kind=kind, secret_sha256=digest(secret), created_at=utcnow())
                    .on_conflict_do_nothing()
                    .returning(c.c.kind)
                ).first()
                stored = conn.execute(
                    select(c.c.secret_sha256).where(c.c.kind == kind)
                ).scalar_one()
            return Generated(kind, secret if created is not None else None, stored)

        return await self._run(ensure)

    async def claim_due(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Claim]:
        m = outbox_message
        due = (
            select(m.c.id)
            .where(
                m.c.status == PENDING,
                m.c.next_attempt_at <= now,
                or_(m.c.claimed_until.is_(None), m.c.claimed_until < now),
            )
            .order_by(m.c.next_attempt_at, m.c.id)
            .limit(limit)
        )

        def claim() -> list[Claim]:
            with self.database.transaction() as conn:
                rows = conn.execute(
                    update(m)
                    .where(m.c.id.in_(due.scalar_subquery()))
                    .values(claimed_by=worker, claimed_until=lease_until)
                    .returning(m.c.id, m.c.document, m.c.attempts, m.c.updated_at)
                ).all()
            return [Claim(r.id, r.document, r.attempts, r.updated_at, lease_until) for r in rows]

        return await self._run(claim)

    async def finish_many(self, batch: list[Finished], worker: str) -> set[str]:
        def finish() -> set[str]:
            with self.database.transaction() as conn:
                return {item.claim.id for item in batch if _finish(conn, item, worker)}

        return await self._run(finish) if batch else set()

    async def release(self, ids: list[str], worker: str) -> int:
        m = outbox_message

        def release() -> int:
            with self.database.transaction() as conn:
                return conn.execute(
                    update(m)
                    .where(m.c.id.in_(ids), m.c.claimed_by == worker)
                    .values(claimed_by=None, claimed_until=None)
                ).rowcount

        return await self._run(release) if ids else 0

    async def take_permit(
        self, limit: int, holder: str, now: datetime, held_until: datetime
    ) -> int | None:
        p = erp_permit

        def take() -> int | None:
            # A writer transaction (BEGIN IMMEDIATE): takers run one after the other.
            with self.database.transaction() as conn:
                held = set(conn.execute(select(p.c.slot).where(p.c.held_until > now)).scalars())
                free = [slot for slot in range(limit) if slot not in held]
                if not free:
                    return None
                slot = random.choice(free)
                conn.execute(delete(p).where(p.c.slot == slot))
                conn.execute(insert(p).values(slot=slot, holder=holder, held_until=held_until))
                return slot

        return await self._run(take)

    async def return_permit(self, slot: int, holder: str) -> None:
        p = erp_permit

        def give_back() -> None:
            with self.database.transaction() as conn:
                conn.execute(delete(p).where(p.c.slot == slot, p.c.holder == holder))

        await self._run(give_back)


def _finish(conn: Connection, item: Finished, worker: str) -> bool:
    """Log the attempt and, while `worker` still holds the claim, store the new state."""
    m, attempt = outbox_message, item.attempt
    conn.execute(
        insert(sync_attempt).values(
            message_id=item.claim.id,
            attempted_at=attempt.attempted_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            outcome=attempt.outcome,
            worker=worker,
        )
    )
    values: dict[str, Any] = {
        "status": item.status,
        "attempts": item.attempts,
        "claimed_by": None,
        "claimed_until": None,
        "updated_at": attempt.attempted_at,
        "last_status_code": attempt.status_code,
        # A delivered message has no error left; earlier ones stay in the attempt log.
        "last_error": attempt.error,
    }
    if item.status == DELIVERED:
        values["delivered_at"] = attempt.attempted_at
    if item.next_attempt_at is not None:
        values["next_attempt_at"] = item.next_attempt_at
    result = conn.execute(
        update(m)
        .where(m.c.id == item.claim.id, m.c.claimed_by == worker, m.c.status == PENDING)
        .values(**values)
    )
    return result.rowcount == 1
