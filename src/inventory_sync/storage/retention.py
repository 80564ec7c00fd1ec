"""Retention: what the service may forget, and forgetting it in short transactions.

Purged, once older than their retention:
- delivered ERP messages (counted from delivery) with their attempt log; the attempts are
  tallied in `purged_attempts` first, so the delivery totals of `/metrics` never go down;
- the raw bodies of accepted, ignored and dismissed events (counted from receipt, and for a
  dismissed event from its dismissal too): emptied, with `body_purged_at` set; the event's row,
  its fields, its ledger rows and its dedupe slot stay. Its `content_hash` becomes the hash of
  its canonical payload, which intake compares a redelivery in other bytes with
  (`intake.service._same_content`), as it compared the body before.

Never purged: the ledger, count observations, shipment lines, events themselves, quarantined
events' bodies (replay needs them), pending or dead messages.

Each batch is one transaction of at most `batch` rows, the rows locked with `SKIP LOCKED` on
PostgreSQL, so that intake and delivery wait for no more than one batch and two purges at once
never take the same rows (nor tally their attempts twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from inventory_sync.newstore.validation import canonical_payload, payload_hash
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import DELIVERED
from inventory_sync.storage.tables import (
    inbound_event,
    outbox_message,
    purged_attempts,
    sync_attempt,
)

BATCH = 1000
# Bodies read at once to hash their payloads: a batch of large bodies is read a few at a time.
READ_BYTES = 16 * 1024 * 1024
# Statuses whose bodies nothing reads again: replay only reads quarantined ones.
SETTLED = ("accepted", "ignored", "dismissed")


@dataclass(frozen=True)
class Policy:
    delivered_days: int
    bodies_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.retain_delivered_days, settings.retain_bodies_days)


@dataclass
class Purged:
    """What a purge removed, or with `dry_run`, would remove."""

    messages: int = 0
    attempts: int = 0
    bodies: int = 0
    body_bytes: int = 0

    def add(self, other: Purged) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def _delivered_before(cutoff: datetime) -> ColumnElement[bool]:
    m = outbox_message
    return and_(m.c.status == DELIVERED, m.c.delivered_at < cutoff)


def _body_purgeable(cutoff: datetime) -> ColumnElement[bool]:
    e = inbound_event
    return and_(
        e.c.status.in_(SETTLED),
        e.c.received_at < cutoff,
        or_(e.c.dismissed_at.is_(None), e.c.dismissed_at < cutoff),
        e.c.body_purged_at.is_(None),
        # An ignored event's body is empty unless INVSYNC_KEEP_IGNORED_BODIES kept it.
        func.length(e.c.raw_body) > 0,
    )


def planned(conn: Connection, policy: Policy, now: datetime) -> Purged:
    """What `purge` would remove now, without removing anything."""
    m, a, e = outbox_message, sync_attempt, inbound_event
    delivered = _delivered_before(now - timedelta(days=policy.delivered_days))
    messages = conn.execute(select(func.count()).where(delivered)).scalar_one()
    attempts = conn.execute(
        select(func.count()).select_from(a.join(m, a.c.message_id == m.c.id)).where(delivered)
    ).scalar_one()
    bodies, size = conn.execute(
        select(func.count(), func.coalesce(func.sum(func.length(e.c.raw_body)), 0)).where(
            _body_purgeable(now - timedelta(days=policy.bodies_days))
        )
    ).one()
    return Purged(int(messages), int(attempts), int(bodies), int(size))


def purge(
    db: Database,
    policy: Policy,
    now: datetime,
    batch: int = BATCH,
    stopping: Callable[[], bool] = lambda: False,
) -> Purged:
    """Remove what retention allows, `batch` rows per transaction, until nothing is left or
    `stopping()` says so between two batches (a worker shutting down waits for one batch)."""
    total = Purged()
    for step in (_messages, _bodies):
        after: Any = None
        while not stopping():
            with db.transaction() as conn:
                done, after = step(conn, policy, now, batch, after)
            total.add(done)
            if after is None:
                break
    return total


def _messages(
    conn: Connection, policy: Policy, now: datetime, batch: int, after: int | None
) -> tuple[Purged, int | None]:
    m, a = outbox_message, sync_attempt
    query = select(m.c.id, m.c.event_id).where(
        _delivered_before(now - timedelta(days=policy.delivered_days))
    )
    if after is not None:
        query = query.where(m.c.event_id > after)
    rows = conn.execute(
        query.order_by(m.c.event_id).limit(batch).with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return Purged(), None
    ids = [row.id for row in rows]
    by_outcome = conn.execute(
        select(a.c.outcome, func.count()).where(a.c.message_id.in_(ids)).group_by(a.c.outcome)
    ).all()
    if by_outcome:
        conn.execute(
            insert(purged_attempts),
            [{"purged_at": now, "outcome": o, "attempts": int(n)} for o, n in by_outcome],
        )
    conn.execute(delete(a).where(a.c.message_id.in_(ids)))
    conn.execute(delete(m).where(m.c.id.in_(ids)))
    done = Purged(messages=len(ids), attempts=sum(int(n) for _, n in by_outcome))
    return done, rows[-1].event_id if len(rows) == batch else None


def _bodies(
    conn: Connection, policy: Policy, now: datetime, batch: int, after: int | None
) -> tuple[Purged, int | None]:
    e = inbound_event
    query = select(e.c.id, func.length(e.c.raw_body).label("size")).where(
        _body_purgeable(now - timedelta(days=policy.bodies_days))
    )
    if after is not None:
        query = query.where(e.c.id > after)
    rows = conn.execute(
        query.order_by(e.c.id).limit(batch).with_for_update(of=e, skip_locked=True)
    ).all()
    if not rows:
        return Purged(), None
    ids = [row.id for row in rows]
    hashes = _payload_hashes(conn, [(row.id, int(row.size)) for row in rows])
    # Spelt out rather than IN, which SQLAlchemy cannot expand in an executemany.
    settled = or_(*(e.c.status == status for status in SETTLED))
    emptied = update(e).where(settled).values(raw_body=b"", body_purged_at=now)
    if hashes:
        conn.execute(
            emptied.where(e.c.id == bindparam("event_id")).values(content_hash=bindparam("h")),
            [{"event_id": event_id, "h": h} for event_id, h in hashes.items()],
        )
    others = [event_id for event_id in ids if event_id not in hashes]
    if others:
        conn.execute(emptied.where(e.c.id.in_(others)))
    done = Purged(bodies=len(ids), body_bytes=sum(int(row.size) for row in rows))
    return done, rows[-1].id if len(rows) == batch else None


def _payload_hashes(conn: Connection, sizes: list[tuple[int, int]]) -> dict[int, str]:
    """The hash of each body's canonical payload, by event id; none for a body that has none
    (not a JSON object). Bodies are read at most `READ_BYTES` at a time."""
    e = inbound_event
    hashes: dict[int, str] = {}
    for group in _groups(sizes, READ_BYTES):
        for row in conn.execute(select(e.c.id, e.c.raw_body).where(e.c.id.in_(group))):
            canonical = canonical_payload(bytes(row.raw_body))
            if canonical is not None:
                hashes[row.id] = payload_hash(canonical)
    return hashes


def _groups(sizes: list[tuple[int, int]], limit: int) -> Iterator[list[int]]:
    """Ids in order, in groups whose sizes add up to at most `limit` (or one larger id)."""
    group: list[int] = []
    total = 0
    for item, size in sizes:
        if group and total + size > limit:
            yield group
            group, total = [], 0
        group.append(item)
        total += size
    if group:
        yield group
