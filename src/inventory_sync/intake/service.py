"""The webhook use case: one body in, stored exactly once, one outcome out; and replay.

`receive()` classifies a body (`intake.classify`) and stores it with one write of the store,
which holds the event, its ledger rows and its ERP document together. Idempotency is one unique
inbox slot per event (see `inbound_event.slot`): of any number of concurrent deliveries of one
event exactly one inserts, and only that one writes ledger rows. Nothing here knows HTTP or the
database's dialect.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from inventory_sync.clock import utcnow
from inventory_sync.errors import DatabaseUnavailable, InputRefused
from inventory_sync.intake.classify import (
    Classified,
    Rules,
    Status,
    classify,
    raw_slot,
    sha256,
    variant_slot,
)
from inventory_sync.intake.recent import RecentBodies, Stored
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.newstore.validation import canonical_payload, payload_hash
from inventory_sync.storage.store import Holder, SlotTaken, Store

log = logging.getLogger("inventory_sync.intake")

# A body this large is classified in a thread, so that the event loop keeps answering other
# requests (health checks, small events) while it is validated; one at a time, so that what
# large bodies cost in memory at once is what one costs.
LARGE_BODY_BYTES = 256 * 1024
_LARGE_BODIES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")


async def _classify(body: bytes, rules: Rules, content_hash: str) -> Classified:
    if len(body) <= LARGE_BODY_BYTES:
        return classify(body, rules, content_hash)
    call = functools.partial(contextvars.copy_context().run, classify, body, rules, content_hash)
    return await asyncio.get_running_loop().run_in_executor(_LARGE_BODIES, call)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    event_id: int | None
    detail: str | None = None
    name: str | None = None
    """The event's `name`, when the body had one; only for metrics labels."""


def _duplicate(event_id: int, name: str | None) -> Outcome:
    return Outcome(Status.DUPLICATE, event_id, f"already stored as event {event_id}", name)


async def receive(
    store: Store,
    body: bytes,
    content_type: str | None,
    rules: Rules,
    recent: RecentBodies,
    origin: str | None = None,
) -> Outcome:
    """Classify and store one body; the write is committed when this returns.

    Raises `DatabaseUnavailable` when nothing could be stored (the caller answers 503 and
    NewStore redelivers). Any other failure keeps the body as quarantined, with the reason,
    which begins with `origin` when given (where the body came from, e.g. a file's line)."""
    now = utcnow()
    content_hash = sha256(body)
    remembered = recent.get(content_hash)
    if remembered is not None:
        holder = await store.slot_holder(remembered.slot)
        if holder is not None and holder.content_hash == content_hash:
            return _duplicate(holder.id, remembered.name)
    try:
        item = await _classify(body, rules, content_hash)
        if item.error is not None:
            item = replace(item, error=_at(origin, item.error))
        kept = body if item.status is not Status.IGNORED or rules.keep_ignored_bodies else b""
        outcome = await _store(store, item, kept, content_type, now, origin)
    except DatabaseUnavailable:
        raise
    except Exception as error:
        # A refused value, a bug or an unforeseen constraint must not lose an authenticated
        # event or yield 500: keep the raw body as quarantined, where replay can pick it up.
        if isinstance(error, InputRefused):
            log.warning("webhook.refused_by_database", extra={"error": str(error)})
        else:
            log.exception("webhook.processing_failed")
        return await _store_failure(store, body, content_type, _at(origin, _failure(error)), now)
    if item.slot is not None:
        name = item.name if item.name in HANDLED else None
        recent.remember(content_hash, Stored(item.slot, name))
    elif item.status is Status.IGNORED:
        recent.remember(content_hash, Stored(raw_slot(content_hash), None))
    return outcome


async def receive_unread(
    store: Store, content_hash: str, reason: str, content_type: str | None
) -> Outcome:
    """Keep as quarantined a body too large to be read into memory: not its bytes, only the
    reason, under the hash of its bytes (so the same body again is the same event)."""
    return await _store_failure(store, b"", content_type, reason, utcnow(), content_hash)


def _at(origin: str | None, error: str) -> str:
    return error if origin is None else f"{origin}: {error}"


def _failure(error: Exception) -> str:
    if isinstance(error, InputRefused):
        return f"could not be processed: {error}"
    # The first line only: a driver's or SQLAlchemy's message goes on with the statement and
    # its parameters, which are no reason and may be the whole body again.
    reason = str(error).partition("\n")[0][:300]
    return f"could not be processed: {reason} ({type(error).__name__})"


async def _store_failure(
    store: Store,
    body: bytes,
    content_type: str | None,
    reason: str,
    now: datetime,
    content_hash: str | None = None,
) -> Outcome:
    item = Classified(Status.QUARANTINED, content_hash or sha256(body), error=reason)
    try:
        return await _store(store, item, body, content_type, now)
    except DatabaseUnavailable:
        raise
    except Exception as second:
        # Not even the raw body can be stored: answer 503 so NewStore redelivers; nothing
        # was acknowledged.
        log.exception("webhook.store_failed")
        raise DatabaseUnavailable(f"cannot store events: {type(second).__name__}") from second


async def _store(
    store: Store,
    item: Classified,
    body: bytes,
    content_type: str | None,
    now: datetime,
    origin: str | None = None,
) -> Outcome:
    if item.slot is None:
        slot = raw_slot(item.content_hash)
        recorded = await store.record_event(item.row(slot, body, content_type, now))
        if recorded.holder is None:
            return Outcome(item.status, recorded.event_id, item.error, item.name)
        holder = recorded.holder
        if holder.status in (Status.IGNORED, Status.DISMISSED):
            # A redelivery, counted once; a dismissed one is stored, which is all NewStore
            # needs to hear (its statuses are the webhook's four).
            return _duplicate(holder.id, item.name)
        # The same bytes again: the same answer as the first time.
        return Outcome(Status(holder.status), holder.id, holder.error, item.name)

    recorded = await store.record_event(item.row(item.slot, body, content_type, now), item.write)
    if recorded.holder is None:
        return Outcome(item.status, recorded.event_id, item.error, item.name)
    holder_id = recorded.holder.id
    if await _same_content(store, recorded.holder, item.content_hash, body):
        return _duplicate(holder_id, item.name)

    # Same key, other content: keep it, visibly, without touching the ledger. Its store stays
    # readable: completeness counts quarantined events per store.
    canonical = canonical_payload(body)
    conflict = replace(
        item,
        status=Status.QUARANTINED,
        write=None,
        occurred_at=None,
        error=_at(origin, f"dedupe key already used by event {holder_id} with different content"),
    )
    variant = variant_slot(item.slot, canonical, item.content_hash)
    recorded = await store.record_event(conflict.row(variant, body, content_type, now))
    if recorded.holder is None:
        return Outcome(Status.QUARANTINED, recorded.event_id, conflict.error, item.name)
    return _duplicate(recorded.event_id, item.name)


async def _same_content(store: Store, holder: Holder, content_hash: str, body: bytes) -> bool:
    """Whether the event holding a slot has this body's content: the same payload, however
    the bytes or the envelope differ. The same bytes, the usual redelivery, decide at once."""
    if holder.content_hash == content_hash:
        return True
    canonical = canonical_payload(body)
    if canonical is None:
        return False
    if holder.content_hash == payload_hash(canonical):
        return True  # a purged body's (storage.retention), or stored by a version that hashed it
    stored = await store.event(holder.id)
    return stored is not None and canonical_payload(stored.raw_body) == canonical


async def replay(store: Store, event_id: int, rules: Rules) -> Outcome | None:
    """Re-process a quarantined event with today's code and rules. None if no such event.

    Idempotent: an event that is no longer quarantined is left exactly as it is. Its body and
    how it arrived are never rewritten; only the verdict changes.
    """
    stored = await store.event(event_id)
    if stored is None:
        return None
    if stored.status != Status.QUARANTINED:
        return _settled(stored.status, event_id, stored.name)
    now = utcnow()
    item = await _classify(stored.raw_body, rules, sha256(stored.raw_body))
    slot = item.slot or stored.slot
    try:
        applied = await store.apply_replay(event_id, item.verdict(slot, now), now, item.write)
    except SlotTaken as taken:
        # The key is another event's: this one stays quarantined, and says so.
        item = replace(
            item,
            status=Status.QUARANTINED,
            write=None,
            occurred_at=None,
            error=f"dedupe key already used by event {taken.holder} with different content",
        )
        applied = await store.apply_replay(event_id, item.verdict(stored.slot, now), now, None)
    except InputRefused as refused:
        # The database refuses this input (e.g. ids too long for one index entry), as it did
        # at intake: the event stays quarantined, with the reason, instead of a 503 that a
        # retry cannot change. Anything else (a missing table, a lost connection) propagates,
        # so that `replay --all` stops at the first event instead of rewriting every reason.
        log.warning("replay.refused_by_database", extra={"error": str(refused)})
        reason = _failure(refused)
        await store.set_replay_error(event_id, reason, now)
        return Outcome(Status.QUARANTINED, event_id, reason, stored.name)
    if not applied:  # replayed meanwhile by someone else
        current = await store.event(event_id)
        assert current is not None
        return _settled(current.status, event_id, current.name)
    return Outcome(item.status, event_id, item.error, item.name)


def _settled(status: str, event_id: int, name: str | None) -> Outcome:
    return Outcome(Status(status), event_id, f"event is {status}; nothing to replay", name)
