"""Replay and retry by filter, bounded per call, with counts of what happened and what is left.

A call handles at most `limit` events or messages, so that an HTTP request (API, console)
answers in bounded time whatever the backlog; the answer says how many remain, and for replay
where to go on from (`last_id`): events that stay quarantined still match, and starting over
would replay them first again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import anyio

from inventory_sync.erp_sync import outbox
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import Store
from inventory_sync.views import events as events_view
from inventory_sync.views import outbox as outbox_view

# The most one call handles. 1,000 replays took about 4.6 s through the API on either backend
# (receipts of one line, on a shared 2-core machine): an answer within an HTTP client's patience.
MAX_REPLAY = 1000
# A retry is one UPDATE of these rows by their primary key, in one transaction.
MAX_RETRY = 10_000


@dataclass(frozen=True)
class Replayed:
    replayed: int
    """Events that left quarantine (accepted, ignored, or found settled meanwhile)."""
    failed: int
    """Events still quarantined after their replay (each with its new reason)."""
    remaining: int
    """Quarantined events matching the filter after `last_id`, not reached by this call."""
    last_id: int | None
    """The last event this call looked at; a next call goes on after it."""
    outcomes: dict[str, int] = field(default_factory=dict)


async def replay_matching(
    store: Store,
    rules: Rules,
    where: events_view.EventFilter,
    limit: int,
    after: int = 0,
    report: Callable[[int, intake.Outcome], None] | None = None,
) -> Replayed:
    """Replay up to `limit` quarantined events matching `where`, after the id `after`, each
    committed alone; `report` hears of each outcome as it comes."""
    where = replace(where, status=Status.QUARANTINED.value)
    ids = await anyio.to_thread.run_sync(_quarantined_ids, store.database, where, limit, after)
    outcomes: Counter[str] = Counter()
    for event_id in ids:
        outcome = await intake.replay(store, event_id, rules)
        if outcome is None:  # gone since it was listed: nothing stores that today
            continue
        outcomes[outcome.status.value] += 1
        if report is not None:
            report(event_id, outcome)
    last_id = ids[-1] if ids else None
    remaining = await anyio.to_thread.run_sync(
        _count_quarantined, store.database, where, last_id or after
    )
    failed = outcomes[Status.QUARANTINED.value]
    return Replayed(
        replayed=sum(outcomes.values()) - failed,
        failed=failed,
        remaining=remaining,
        last_id=last_id,
        outcomes=dict(sorted(outcomes.items())),
    )


def _quarantined_ids(
    db: Database, where: events_view.EventFilter, limit: int, after: int
) -> list[int]:
    with db.snapshot() as conn:
        return events_view.matching_ids(conn, where, limit, after)


def _count_quarantined(db: Database, where: events_view.EventFilter, after: int) -> int:
    with db.snapshot() as conn:
        return events_view.count_matching(conn, where, after)


@dataclass(frozen=True)
class Retried:
    retried: int
    """Dead messages back to pending, due now."""
    failed: int
    """Listed as dead but no longer dead when retried (retried or delivered meanwhile)."""
    remaining: int
    """Dead messages still matching the filter."""


def retry_matching(
    db: Database, where: outbox_view.MessageFilter, limit: int, now: datetime
) -> Retried:
    """Retry up to `limit` dead messages matching `where`, oldest event first, in one
    transaction."""
    where = replace(where, status=outbox.DEAD)
    with db.transaction() as conn:
        ids = outbox_view.message_ids(conn, where, limit)
        retried = outbox.retry_dead(conn, ids, now)
        remaining = outbox_view.count_messages(conn, where)
    return Retried(retried=retried, failed=len(ids) - retried, remaining=remaining)
