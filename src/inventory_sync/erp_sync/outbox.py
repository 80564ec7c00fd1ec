"""The outbox table's own operations. Never imports an HTTP client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from inventory_sync.erp_sync.models import outbox_message, sync_attempt

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


def enqueue(
    conn: Connection,
    *,
    message_id: str,
    event_id: int,
    tenant: str,
    type_: str,
    location_id: str,
    document: str,
    now: datetime,
) -> None:
    """Queue one document for delivery, due at once. Part of the caller's transaction."""
    conn.execute(
        insert(outbox_message).values(
            id=message_id,
            event_id=event_id,
            tenant=tenant,
            type=type_,
            location_id=location_id,
            document=document,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


@dataclass(frozen=True)
class Claim:
    """A message this worker may deliver until its lease runs out."""

    id: str
    document: str
    attempts: int
    # When the message was enqueued or last tried; see worker.py for why this matters.
    updated_at: datetime
    # The end of the lease: after it, another worker may claim (and send) the message.
    claimed_until: datetime


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the worker saw it."""

    attempted_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None = None
    error: str | None = None


def claim_due(
    conn: Connection, *, worker: str, limit: int, now: datetime, lease_until: datetime
) -> list[Claim]:
    """Lease up to `limit` due messages to `worker`, oldest due first.

    On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several workers claim at once without waiting
    for or double-claiming each other's rows. On SQLite the caller's transaction is `BEGIN
    IMMEDIATE` (`Database.transaction()`), which already serialises claimers.

    A lease, not a held row lock, marks the claim: the HTTP call happens outside any
    transaction, and a worker killed mid-delivery simply lets its lease expire, after which
    any worker claims the message again.
    """
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
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = conn.execute(
        update(m)
        .where(m.c.id.in_(due.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=lease_until)
        .returning(m.c.id, m.c.document, m.c.attempts, m.c.updated_at)
    ).all()
    return [Claim(r.id, r.document, r.attempts, r.updated_at, lease_until) for r in rows]


def finish(
    conn: Connection,
    claim: Claim,
    *,
    worker: str,
    attempt: Attempt,
    status: str,
    attempts: int,
    next_attempt_at: datetime | None,
) -> bool:
    """Log `attempt` and store the message's new state, ending the claim.

    The update only applies while `worker` still holds the claim: a worker whose lease ran out
    (and whose message another worker has since claimed or delivered) cannot overwrite that
    newer result. Returns whether the message was updated; the attempt is logged either way,
    because it happened.
    """
    m = outbox_message
    conn.execute(
        insert(sync_attempt).values(
            message_id=claim.id,
            attempted_at=attempt.attempted_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            error=attempt.error,
            outcome=attempt.outcome,
            worker=worker,
        )
    )
    now = attempt.attempted_at
    values: dict[str, Any] = {
        "status": status,
        "attempts": attempts,
        "claimed_by": None,
        "claimed_until": None,
        "updated_at": now,
        "last_status_code": attempt.status_code,
    }
    if status == DELIVERED:
        values["delivered_at"] = now
    # A delivered message has no error left; earlier ones stay in the attempt log.
    values["last_error"] = attempt.error
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    result = conn.execute(
        update(m)
        .where(m.c.id == claim.id, m.c.claimed_by == worker, m.c.status == PENDING)
        .values(**values)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Finished:
    """One attempt and the message state it leads to, waiting to be recorded."""

    claim: Claim
    attempt: Attempt
    status: str
    attempts: int
    next_attempt_at: datetime | None


# One statement for a whole batch on PostgreSQL: log every attempt (in order) and store each
# message's new state, guarded like `finish()`; returns the ids whose state was stored.
_FINISH_MANY_PG = text("""
WITH batch AS (
    SELECT * FROM ROWS FROM (json_to_recordset(CAST(:rows AS json)) AS (
        id text, status text, attempts integer, next_attempt_at timestamptz,
        attempted_at timestamptz, duration_ms integer, status_code integer, error text,
        outcome text))
        WITH ORDINALITY AS b (id, status, attempts, next_attempt_at, attempted_at,
            duration_ms, status_code, error, outcome, n)
),
logged AS (
    INSERT INTO sync_attempt (message_id, attempted_at, duration_ms, status_code, error,
        outcome, worker)
    SELECT id, attempted_at, duration_ms, status_code, error, outcome, :worker
    FROM batch ORDER BY n
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
WHERE m.id = b.id AND m.claimed_by = :worker AND m.status = 'pending'
RETURNING m.id
""")


def finish_many(conn: Connection, batch: list[Finished], *, worker: str) -> set[str]:
    """`finish()` for many messages in the caller's transaction (one commit for all).

    Same rules: every attempt is logged, and a message's state is stored only while `worker`
    still holds its claim. Returns the ids whose state was stored. On PostgreSQL this is one
    statement whatever the batch size; SQLite (in-process, no round trips) takes them one by
    one.
    """
    if not batch:
        return set()
    if conn.dialect.name != "postgresql":
        return {
            item.claim.id
            for item in batch
            if finish(
                conn,
                item.claim,
                worker=worker,
                attempt=item.attempt,
                status=item.status,
                attempts=item.attempts,
                next_attempt_at=item.next_attempt_at,
            )
        }
    rows = [
        {
            "id": item.claim.id,
            "status": item.status,
            "attempts": item.attempts,
            "next_attempt_at": _iso(item.next_attempt_at),
            "attempted_at": _iso(item.attempt.attempted_at),
            "duration_ms": item.attempt.duration_ms,
            "status_code": item.attempt.status_code,
            "error": item.attempt.error,
            "outcome": item.attempt.outcome,
        }
        for item in batch
    ]
    kept = conn.execute(
        _FINISH_MANY_PG, {"rows": json.dumps(rows, ensure_ascii=False), "worker": worker}
    )
    return {row[0] for row in kept}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def release(conn: Connection, ids: list[str], *, worker: str) -> int:
    """Give claims back unfinished (graceful shutdown), so another worker need not wait out
    the lease."""
    if not ids:
        return 0
    m = outbox_message
    result = conn.execute(
        update(m)
        .where(m.c.id.in_(ids), m.c.claimed_by == worker)
        .values(claimed_by=None, claimed_until=None)
    )
    return result.rowcount


def retry(conn: Connection, message_id: str, now: datetime) -> str | None:
    """Make one message due now. A dead one goes back to `pending` with its attempts reset.

    Returns the status the message had before (None when there is no such message); a
    delivered message is left as it is.
    """
    m = outbox_message
    status = conn.execute(select(m.c.status).where(m.c.id == message_id)).scalar_one_or_none()
    if status == DEAD:
        conn.execute(
            update(m)
            .where(m.c.id == message_id, m.c.status == DEAD)
            .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        )
    elif status == PENDING:
        conn.execute(
            update(m)
            .where(m.c.id == message_id, m.c.status == PENDING)
            .values(next_attempt_at=now, updated_at=now)
        )
    return status


def retry_dead(conn: Connection, now: datetime) -> int:
    """Every dead message back to `pending`, attempts reset, due now. Returns how many."""
    m = outbox_message
    result = conn.execute(
        update(m)
        .where(m.c.status == DEAD)
        .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount


def pending_count(conn: Connection) -> int:
    m = outbox_message
    count = conn.execute(select(func.count()).where(m.c.status == PENDING)).scalar_one()
    return int(count)
