"""Intake: classify a webhook body, then store it and its effect in one transaction.

`classify()` is pure. `store()` makes intake idempotent with one unique slot per event
(see `inbound_event.slot`): `INSERT ... ON CONFLICT (slot) DO NOTHING` lets exactly one of any
number of concurrent identical deliveries win, and only the winner writes ledger rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, exc, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from inventory_sync.db import refuses_input
from inventory_sync.ledger import domain
from inventory_sync.ledger import service as ledger_service
from inventory_sync.webhooks import recent, schemas
from inventory_sync.webhooks.models import inbound_event

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
IGNORED = "ignored"
QUARANTINED = "quarantined"

log = logging.getLogger("inventory_sync.webhooks")


@dataclass(frozen=True)
class Rules:
    """The configuration that decides what an event does."""

    tenants: frozenset[str] = frozenset()
    return_locations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Classified:
    """What intake learnt from one body, before touching the database."""

    status: str
    error: str | None = None
    key: tuple[str, str, str, int] | None = None
    content_hash: str | None = None
    tenant: str | None = None
    name: str | None = None
    payload_id: str | None = None
    chunk_number: int | None = None
    total_chunks: int | None = None
    published_at: datetime | None = None
    effect: domain.Effect | None = None
    asn_id: str | None = None
    shipment_ref: str | None = None

    @property
    def slot(self) -> str | None:
        """The inbox slot of the dedupe key (`primary_slot()`), or None without a key; both
        `store()` and `stored_as()` need it, and it costs a JSON encoding and a hash."""
        if self.key is None:
            return None
        # Kept by hand rather than with functools.cached_property, which on Python 3.11 takes
        # one lock for all instances, contended by the intake threads.
        slot: str | None = self.__dict__.get("_slot")
        if slot is None:
            slot = self.__dict__["_slot"] = primary_slot(self.key)
        return slot


@dataclass(frozen=True)
class Outcome:
    status: str
    event_id: int | None
    detail: str | None = None
    name: str | None = None
    """The event's `name`, when the body had one; only for metrics labels."""


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _lenient_key(envelope: dict[str, Any]) -> tuple[str, str, str, int] | None:
    """The dedupe key, when the body has one, even if the rest of it is invalid."""
    tenant, name, payload = envelope.get("tenant"), envelope.get("name"), envelope.get("payload")
    if not (isinstance(tenant, str) and isinstance(name, str) and isinstance(payload, dict)):
        return None
    payload_id, chunk = payload.get("id"), payload.get("chunk_number", 1)
    if isinstance(payload_id, int) and not isinstance(payload_id, bool):
        payload_id = str(payload_id)
    if chunk is None:
        chunk = 1
    if isinstance(chunk, float) and chunk.is_integer():
        chunk = int(chunk)
    if not (isinstance(payload_id, str) and payload_id and type(chunk) is int):
        return None
    if not 1 <= chunk <= schemas.MAX_CHUNKS:
        return None  # out of range: the model names the problem, and it fits no column
    key = (tenant, name, payload_id, chunk)
    try:
        json.dumps(key).encode()
        "".join(key[:3]).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return None
    if any("\x00" in part for part in key[:3]):
        return None
    return key


def _canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def classify(body: bytes, rules: Rules) -> Classified:
    """Decide the status of a body and, for a valid handled event, its ledger effect."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        return Classified(QUARANTINED, f"body is not valid JSON: {error}")
    except RecursionError:
        return Classified(QUARANTINED, "body is not valid JSON: nested too deeply")
    if not isinstance(document, dict):
        return Classified(QUARANTINED, "body must be a JSON object with tenant, name and payload")

    key = _lenient_key(document)
    try:
        content_hash = _sha(_canonical(document.get("payload")))
    except (UnicodeEncodeError, ValueError, RecursionError):
        content_hash = _sha(body)
    # Built once and replaced at each step that learns more: every instance costs a call.
    if key is None:
        base = Classified(QUARANTINED, content_hash=content_hash)
    else:
        base = Classified(
            QUARANTINED,
            key=key,
            content_hash=content_hash,
            tenant=key[0],
            name=key[1],
            payload_id=key[2],
            chunk_number=key[3],
        )

    try:
        envelope = schemas.Envelope.model_validate(document)
    except ValidationError as error:
        return replace(base, error=schemas.describe(error))
    base = replace(
        base, tenant=envelope.tenant, name=envelope.name, published_at=envelope.published_at
    )
    if rules.tenants and envelope.tenant not in rules.tenants:
        return replace(base, error=f"tenant {envelope.tenant!r} is not in INVSYNC_TENANTS")

    model = schemas.PAYLOAD_MODELS.get(envelope.name)
    if model is None:
        return replace(base, status=IGNORED, error=None)
    try:
        payload = schemas.validate_payload(model, envelope.payload, body)
    except ValidationError as error:
        return replace(base, error=schemas.describe(error, "payload."))
    if key is None:
        # The lenient reading found no key (e.g. chunk_number "2"), but the model did.
        key = (envelope.tenant, envelope.name, payload.id, payload.chunk_number)
    known_key = key

    def identified(
        status: str = QUARANTINED,
        error: str | None = None,
        effect: domain.Effect | None = None,
    ) -> Classified:
        return replace(
            base,
            status=status,
            error=error,
            effect=effect,
            key=known_key,
            payload_id=known_key[2],
            chunk_number=known_key[3],
            total_chunks=payload.total_chunks,
            asn_id=getattr(payload, "asn_id", None),
            shipment_ref=getattr(payload, "shipment_ref", None),
        )

    if payload.total_chunks is not None and payload.chunk_number > payload.total_chunks:
        return identified(
            error=f"payload.chunk_number: {payload.chunk_number} is above "
            f"total_chunks {payload.total_chunks}"
        )
    try:
        effect = domain.translate(payload, envelope.published_at, rules.return_locations or {})
    except domain.Unprocessable as error:
        return identified(error=str(error))
    return identified(status=ACCEPTED, effect=effect)


# Built once: the row goes in as execution parameters, so no statement is constructed (and
# no value coerced into a bind parameter) per webhook.
_INSERT_ONCE = {
    name: dialect_insert(inbound_event)
    .on_conflict_do_nothing(index_elements=["slot"])
    .returning(inbound_event.c.id)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


# The event holding a slot, with its content hash: what a body finding its slot taken is
# compared with.
_HOLDER = select(inbound_event.c.id, inbound_event.c.content_hash).where(
    inbound_event.c.slot == bindparam("slot")
)


def _insert(conn: Connection, values: dict[str, Any]) -> int | None:
    return conn.execute(_INSERT_ONCE[conn.dialect.name], values).scalar_one_or_none()


def primary_slot(key: tuple[str, str, str, int]) -> str:
    return _sha(json.dumps(key, ensure_ascii=False))


def _row_values(
    item: Classified, slot: str, body: bytes, content_type: str | None, now: datetime
) -> dict[str, Any]:
    effect = item.effect
    return {
        "slot": slot,
        "tenant": item.tenant,
        "name": item.name,
        "payload_id": item.payload_id,
        "chunk_number": item.chunk_number,
        "total_chunks": item.total_chunks,
        "status": item.status,
        "error": item.error,
        "content_hash": item.content_hash,
        "location_id": effect.location_id if effect else None,
        "occurred_at": effect.occurred_at if effect else None,
        "published_at": item.published_at,
        "asn_id": item.asn_id,
        "shipment_ref": item.shipment_ref,
        "raw_body": body,
        "content_type": content_type,
        "received_at": now,
        "processed_at": now if item.status == ACCEPTED else None,
    }


def _source(event_id: int, item: Classified) -> ledger_service.Source:
    assert item.key is not None
    tenant, name, payload_id, chunk_number = item.key
    return ledger_service.Source(
        event_id, tenant, name, payload_id, chunk_number, item.total_chunks, item.published_at
    )


def _effect(item: Classified) -> domain.Effect:
    assert item.effect is not None
    return item.effect


def apply(conn: Connection, event_id: int, item: Classified, now: datetime) -> None:
    """Write the ledger rows and the outbox message of an accepted event."""
    ledger_service.record(conn, _source(event_id, item), _effect(item), now)


def store(
    conn: Connection, item: Classified, body: bytes, content_type: str | None, now: datetime
) -> Outcome:
    """Store one classified body idempotently and apply it if accepted. Commits nothing itself.

    On PostgreSQL every write here is a single statement, so `conn` may be in autocommit mode:
    an accepted event, its ledger rows and its outbox message are one statement."""
    if item.slot is None:
        slot = "raw:" + _sha(body)
        event_id = _insert(conn, _row_values(item, slot, body, content_type, now))
        if event_id is not None:
            return Outcome(item.status, event_id, item.error, name=item.name)
        existing = conn.execute(
            select(inbound_event.c.id, inbound_event.c.status, inbound_event.c.error).where(
                inbound_event.c.slot == slot
            )
        ).one()
        return Outcome(existing.status, existing.id, existing.error, name=item.name)

    slot = item.slot
    values = _row_values(item, slot, body, content_type, now)
    known: tuple[int, str | None] | None = None
    if item.status == ACCEPTED and conn.dialect.name == "postgresql":
        found = ledger_service.record_with_event(conn, values, _source(0, item), _effect(item), now)
        if found is not None:
            event_id, inserted, content_hash = found
            if inserted:
                return Outcome(item.status, event_id, item.error, name=item.name)
            known = (event_id, content_hash)
    else:
        event_id = _insert(conn, values)
        if event_id is not None and item.status == ACCEPTED:
            apply(conn, event_id, item, now)
        if event_id is not None:
            return Outcome(item.status, event_id, item.error, name=item.name)

    if known is None:
        holder = conn.execute(_HOLDER, {"slot": slot}).one()
        known = (holder.id, holder.content_hash)
    known_id, known_hash = known
    if known_hash == item.content_hash:
        return _duplicate(known_id, item.name)

    # Same key, other content: keep it, visibly, without touching the ledger.
    conflict = replace(
        item,
        status=QUARANTINED,
        effect=None,
        error=f"dedupe key already used by event {known_id} with different content",
    )
    variant = slot + ":" + (item.content_hash or "")[:15]
    event_id = _insert(conn, _row_values(conflict, variant, body, content_type, now))
    if event_id is not None:
        return Outcome(QUARANTINED, event_id, conflict.error, name=item.name)
    existing_variant = conn.execute(
        select(inbound_event.c.id).where(inbound_event.c.slot == variant)
    ).scalar_one()
    return _duplicate(existing_variant, item.name)


def _duplicate(event_id: int, name: str | None) -> Outcome:
    return Outcome(DUPLICATE, event_id, f"already stored as event {event_id}", name=name)


def stored_as(item: Classified) -> recent.Stored | None:
    """Where `store()` put, or found, this body's content: its primary slot, if it has one."""
    if item.slot is None or item.content_hash is None:
        return None
    # The name only labels metrics, where unhandled names are "other"; keeping it only when
    # handled bounds the entry whatever the body says.
    name = item.name if item.name in schemas.PAYLOAD_MODELS else None
    return recent.Stored(item.slot, item.content_hash, name)


def confirm_duplicate(conn: Connection, stored: recent.Stored) -> Outcome | None:
    """The answer `store()` gives a body stored as `stored` if the slot still holds the same
    content (a duplicate of its holder), else None: then the body needs the full path."""
    holder = conn.execute(_HOLDER, {"slot": stored.slot}).one_or_none()
    if holder is None or holder.content_hash != stored.content_hash:
        return None
    return _duplicate(holder.id, stored.name)


def store_failure(
    conn: Connection, body: bytes, content_type: str | None, error: str, now: datetime
) -> Outcome:
    """Keep a body whose processing failed unexpectedly, so nothing acknowledged is lost."""
    item = Classified(QUARANTINED, error=error, content_hash=_sha(body))
    return store(conn, item, body, content_type, now)


def replay(conn: Connection, event_id: int, rules: Rules, now: datetime) -> Outcome | None:
    """Re-process a quarantined event with today's code and rules. None if no such event.

    Idempotent: an event that is no longer quarantined is left exactly as it is.
    """
    lock = select(inbound_event).where(inbound_event.c.id == event_id)
    if conn.dialect.name == "postgresql":
        lock = lock.with_for_update()
    row = conn.execute(lock).one_or_none()
    if row is None:
        return None
    if row.status != QUARANTINED:
        return Outcome(
            row.status, row.id, f"event is {row.status}; nothing to replay", name=row.name
        )

    item = classify(row.raw_body, rules)
    slot = row.slot
    wanted = item.slot or slot
    if wanted != slot:
        holder = conn.execute(
            select(inbound_event.c.id).where(inbound_event.c.slot == wanted)
        ).scalar_one_or_none()
        if holder is not None:
            item = replace(
                item,
                status=QUARANTINED,
                effect=None,
                error=f"dedupe key already used by event {holder} with different content",
            )
        else:
            slot = wanted

    values = _row_values(item, slot, row.raw_body, row.content_type, row.received_at)
    # The stored body and how it arrived are never rewritten; only the verdict changes.
    for kept in ("raw_body", "content_type", "received_at"):
        del values[kept]
    values["replayed_at"] = now
    values["processed_at"] = now if item.status == ACCEPTED else None
    verdict = update(inbound_event).where(inbound_event.c.id == event_id)
    try:
        with conn.begin_nested():
            conn.execute(verdict.values(values))
            if item.status == ACCEPTED:
                apply(conn, event_id, item, now)
    except exc.DBAPIError as error:
        if not refuses_input(error):
            raise
        # The database refuses this input (e.g. ids too long for one index entry), as it did
        # at intake: the event stays quarantined, with the reason, instead of a 503 that a
        # retry cannot change. Anything else (a missing table, a lost connection) propagates,
        # so that `replay --all` stops at the first event instead of rewriting every reason.
        log.warning("replay.refused_by_database", exc_info=error)
        reason = f"could not be processed: {type(error.orig).__name__}: {str(error.orig)[:300]}"
        conn.execute(verdict.values(error=reason, replayed_at=now))
        return Outcome(QUARANTINED, event_id, reason, name=row.name)
    return Outcome(item.status, event_id, item.error, name=item.name)
