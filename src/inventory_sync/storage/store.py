"""The port: what the service asks of its database where the backends differ.

Intake, replay, the ERP worker and start-up talk to a `Store`; each backend implements it in
one module (`storage.postgres`, `storage.sqlite`), the only modules that name a dialect or a
driver. Read queries are the same on both and stay plain SQLAlchemy Core over
`Store.database` (`views/`).

Every write method is atomic by itself: it commits before it returns, or changes nothing. An
accepted event, its ledger rows, its observations and its outbox message are one such write,
so a stock change without its ERP document cannot exist. Methods raise the service's own
errors: `DatabaseUnavailable` (retry later), `InputRefused` (these values cannot be stored);
anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from inventory_sync.credentials import Generated
from inventory_sync.ledger.documents import Document, Source
from inventory_sync.ledger.effects import Effect
from inventory_sync.storage.database import Database

# Outbox message states.
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What intake decided about a body: the inbox row's columns besides the body itself."""

    slot: str
    status: str
    error: str | None
    content_hash: str
    tenant: str | None
    name: str | None
    payload_id: str | None
    chunk_number: int | None
    total_chunks: int | None
    location_id: str | None
    occurred_at: datetime | None
    published_at: datetime | None
    asn_id: str | None
    shipment_ref: str | None
    processed_at: datetime | None

    def columns(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in VERDICT_COLUMNS}


VERDICT_COLUMNS = tuple(f.name for f in fields(Verdict))


@dataclass(frozen=True, slots=True)
class EventRow:
    """An inbox row: a body as received, and the verdict on it."""

    verdict: Verdict
    raw_body: bytes
    content_type: str | None
    received_at: datetime

    @property
    def slot(self) -> str:
        return self.verdict.slot

    def columns(self) -> dict[str, Any]:
        return {
            **self.verdict.columns(),
            "raw_body": self.raw_body,
            "content_type": self.content_type,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class Write:
    """What an accepted event adds besides its inbox row: its effect and its ERP document."""

    source: Source
    effect: Effect
    document: Document | None
    """None for an event the ERP is not sent (a sale without INVSYNC_ERP_SEND_SALES)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """The event that holds an inbox slot."""

    id: int
    content_hash: str | None
    status: str
    error: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    event_id: int
    holder: Holder | None = None
    """Set when the slot was taken: the event that holds it, whose id `event_id` then is."""

    @property
    def inserted(self) -> bool:
        return self.holder is None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    slot: str
    status: str
    name: str | None
    content_hash: str | None
    raw_body: bytes
    content_type: str | None
    received_at: datetime


class SlotTaken(Exception):
    """A replay's verdict names a slot another event holds."""

    def __init__(self, holder: int) -> None:
        super().__init__(f"slot held by event {holder}")
        self.holder = holder


@dataclass(frozen=True, slots=True)
class Claim:
    """A message this worker may deliver until its lease runs out."""

    id: str
    document: str
    attempts: int
    updated_at: datetime
    """When the message was enqueued or last tried; see erp_sync/worker.py for why."""
    claimed_until: datetime
    """The end of the lease: after it, another worker may claim (and send) the message."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as the worker saw it."""

    attempted_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt and the message state it leads to, waiting to be recorded."""

    claim: Claim
    attempt: Attempt
    status: str
    attempts: int
    next_attempt_at: datetime | None


class Store(Protocol):
    database: Database
    """Synchronous access to the same database, for read queries and ops commands."""

    async def prepare(self) -> str | None:
        """Make the schema usable where the backend may (the embedded SQLite default creates
        and upgrades its own); return why it cannot serve yet, or None."""

    async def close(self) -> None: ...

    async def record_event(self, row: EventRow, write: Write | None = None) -> Recorded:
        """Insert `row` unless its slot is taken and, if inserted, `write` with it.

        Exactly one of any number of concurrent records of one slot inserts; the others get
        its holder."""

    async def slot_holder(self, slot: str) -> Holder | None: ...

    async def event(self, event_id: int) -> StoredEvent | None: ...

    async def apply_replay(
        self, event_id: int, verdict: Verdict, replayed_at: datetime, write: Write | None
    ) -> bool:
        """Store `verdict` (and `write`, when accepted) if the event is still quarantined; the
        event's body and how it arrived are never rewritten.

        False when it no longer is (nothing changes). Raises `SlotTaken` when the verdict's
        slot is another event's, `InputRefused` when the database refuses the values."""

    async def set_replay_error(self, event_id: int, error: str, replayed_at: datetime) -> None:
        """Keep the event quarantined with `error` as its reason."""

    async def ensure_credential(self, kind: str, secret: str) -> Generated:
        """The generated credential of `kind`; `secret` becomes it if none exists yet, and only
        then is the plaintext returned. Several processes may start at once: one wins."""

    async def claim_due(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Claim]:
        """Lease up to `limit` due messages to `worker`, oldest due first, without waiting for
        or double-claiming other workers' claims. A lease, not a held lock: the HTTP call
        happens outside any transaction, and a killed worker's leases simply run out."""

    async def finish_many(self, batch: list[Finished], worker: str) -> set[str]:
        """Log every attempt and store each message's new state, ending its claim, where
        `worker` still holds it. Returns the ids whose state was stored."""

    async def release(self, ids: list[str], worker: str) -> int:
        """Give claims back unfinished, so another worker need not wait out the lease."""

    async def take_permit(
        self, limit: int, holder: str, now: datetime, held_until: datetime
    ) -> int | None:
        """One of `limit` permits, held by `holder` until `held_until` (or returned): its slot,
        or None when all are held. However many processes ask at once, no more than `limit`
        permits are held at any moment; one held past `held_until` is free again."""

    async def return_permit(self, slot: int, holder: str) -> None:
        """Give the permit back if `holder` still holds it."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def open_database(url: str, *, pool_size: int = 5) -> Database:
    """Synchronous access to the database at `url` (the backend's engine)."""
    if is_sqlite(url):
        from inventory_sync.storage import sqlite

        return Database(sqlite.engine(url))
    from inventory_sync.storage import postgres

    return Database(postgres.engine(url, pool_size=pool_size))


async def open_store(url: str, *, pool_size: int = 8) -> Store:
    """The store for `url`; on PostgreSQL with at most `pool_size` connections for its writes.

    Never fails for an unreachable database: methods raise `DatabaseUnavailable` until it is
    back."""
    if is_sqlite(url):
        from inventory_sync.storage import sqlite

        return sqlite.SqliteStore(open_database(url))
    from inventory_sync.storage import postgres

    return await postgres.PostgresStore.open(url, pool_size=pool_size)
