"""The verdict on one webhook body, before anything is stored. Pure: no I/O, no clock.

`classify()` reads the body (`newstore.validation`), applies the configured rules, and for a
valid handled event computes its ledger effect and its ERP document, so that storing it is one
write (`storage.store.Store.record_event`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from inventory_sync.ledger import documents, effects
from inventory_sync.newstore import validation
from inventory_sync.newstore.payloads import HANDLED, HandledEvent, ItemsCompleted
from inventory_sync.settings import LINES_LIMIT, Settings
from inventory_sync.storage.store import EventRow, Verdict, Write


class Status(StrEnum):
    ACCEPTED = "accepted"
    """New, valid, applied to the ledger and queued for the ERP."""
    DUPLICATE = "duplicate"
    """Same dedupe key and same content as a stored event; nothing changed."""
    IGNORED = "ignored"
    """Well-formed, but of an event name the service does not handle; stored, not applied."""
    QUARANTINED = "quarantined"
    """Stored with the reason it cannot be processed; replayable."""
    DISMISSED = "dismissed"
    """A quarantined event an admin set aside (`intake.dismiss`); never an answer to NewStore:
    a redelivery of it is a `duplicate`."""


@dataclass(frozen=True)
class Rules:
    """The configuration that decides what an event does."""

    tenants: frozenset[str] = frozenset()
    return_locations: Mapping[str, str] = field(default_factory=dict)
    max_lines: int = LINES_LIMIT
    """INVSYNC_MAX_LINES_PER_EVENT."""
    keep_ignored_bodies: bool = False
    """INVSYNC_KEEP_IGNORED_BODIES."""
    send_sales: bool = False
    """INVSYNC_ERP_SEND_SALES: without it a sale moves the ledger and queues no ERP document."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(
            frozenset(settings.tenants),
            dict(settings.return_locations),
            settings.max_lines_per_event,
            settings.keep_ignored_bodies,
            settings.erp_send_sales,
        )


@dataclass(frozen=True, slots=True)
class Classified:
    """What intake learnt from one body, before touching the database."""

    status: Status
    content_hash: str
    """SHA-256 of the body's bytes, hex."""
    error: str | None = None
    key: validation.Key | None = None
    slot: str | None = None
    """The inbox slot of the dedupe key (`primary_slot()`), or None without a key."""
    tenant: str | None = None
    name: str | None = None
    published_at: datetime | None = None
    total_chunks: int | None = None
    location_id: str | None = None
    occurred_at: datetime | None = None
    asn_id: str | None = None
    shipment_ref: str | None = None
    write: Write | None = None
    """For an accepted event: its effect and its ERP document."""

    def verdict(self, slot: str, now: datetime) -> Verdict:
        """The inbox columns of this verdict, stored under `slot` at `now`."""
        key = self.key
        return Verdict(
            slot=slot,
            status=self.status.value,
            error=self.error,
            content_hash=self.content_hash,
            tenant=self.tenant,
            name=self.name,
            payload_id=key[2] if key else None,
            chunk_number=validation.chunk_of(key) if key else None,
            total_chunks=self.total_chunks,
            location_id=self.location_id,
            occurred_at=self.occurred_at,
            published_at=self.published_at,
            asn_id=self.asn_id,
            shipment_ref=self.shipment_ref,
            processed_at=now if self.status is Status.ACCEPTED else None,
        )

    def row(self, slot: str, body: bytes, content_type: str | None, now: datetime) -> EventRow:
        """The inbox row of this body under `slot`, received at `now`."""
        return EventRow(self.verdict(slot, now), body, content_type, now)


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def primary_slot(key: validation.Key) -> str:
    """The slot of the first content stored under a dedupe key: its hash, so the index stays
    small whatever the ids look like."""
    return sha256(validation.key_text(key))


def raw_slot(content_hash: str) -> str:
    """The slot of a body without a dedupe key: its bytes decide."""
    return "raw:" + content_hash


def variant_slot(slot: str, canonical_payload: str | None, content_hash: str) -> str:
    """The slot of other content under a key whose primary slot is taken."""
    return slot + ":" + (sha256(canonical_payload) if canonical_payload else content_hash)[:15]


def classify(body: bytes, rules: Rules, content_hash: str) -> Classified:
    """Decide the status of a body and, for a valid handled event, its effect and document."""
    read = validation.read(body)
    if isinstance(read, validation.Refused):
        return _refused(read, content_hash)
    if isinstance(read, validation.Unhandled):
        envelope = read.envelope
        verdict = Classified(
            Status.IGNORED,
            content_hash,
            # Its key names it (payload_id) but takes no slot: an event the service does not
            # handle is never compared with another under the same key, so never quarantined
            # for its content. Only its very bytes again are the same delivery.
            key=validation.lenient_key(read.document),
            slot=None,
            tenant=envelope.tenant,
            name=envelope.name,
            published_at=envelope.published_at,
        )
        if rules.tenants and envelope.tenant not in rules.tenants:
            return _off_tenant(verdict, envelope.tenant)
        return verdict

    event = read.event
    payload = event.payload
    key = validation.key_of(event)
    error = None
    if rules.tenants and event.tenant not in rules.tenants:
        error = f"tenant {event.tenant!r} is not in INVSYNC_TENANTS"
    elif payload.total_chunks is not None and payload.chunk_number > payload.total_chunks:
        error = (
            f"payload.chunk_number: {payload.chunk_number} is above "
            f"total_chunks {payload.total_chunks}"
        )
    elif len(payload.items) > rules.max_lines:
        error = (
            f"payload.items: {len(payload.items)} lines, more than INVSYNC_MAX_LINES_PER_EVENT "
            f"({rules.max_lines})"
        )
    write = None
    if error is None:
        try:
            write = _accepted(event, rules)
        except effects.Unprocessable as unprocessable:
            error = str(unprocessable)
    effect = write.effect if write is not None else None
    return Classified(
        Status.QUARANTINED if write is None else Status.ACCEPTED,
        content_hash,
        error=error,
        key=key,
        slot=primary_slot(key),
        tenant=event.tenant,
        name=event.name,
        published_at=event.published_at,
        total_chunks=payload.total_chunks,
        # Read for a quarantined event too: completeness counts them per store.
        location_id=payload.location_id,
        occurred_at=effect.occurred_at if effect is not None else None,
        # Reconciliation matches receipts to ASNs by these.
        asn_id=getattr(payload, "asn_id", None),
        shipment_ref=getattr(payload, "shipment_ref", None),
        write=write,
    )


def _accepted(event: HandledEvent, rules: Rules) -> Write:
    """The effect and ERP document of a valid handled event (or `Unprocessable`)."""
    effect = effects.translate(event, rules.return_locations)
    payload = event.payload
    sale = payload if isinstance(payload, ItemsCompleted) else None
    source = documents.Source(
        event.tenant,
        event.name,
        payload.id,
        payload.chunk_number,
        payload.total_chunks,
        event.published_at,
        sale.logical_timestamp if sale is not None else None,
    )
    if sale is not None and not rules.send_sales:
        return Write(source, effect, None)
    return Write(source, effect, documents.build(source, effect))


def _refused(read: validation.Refused, content_hash: str) -> Classified:
    key = validation.lenient_key(read.document) if read.document is not None else None
    verdict = Classified(Status.QUARANTINED, content_hash, error=read.reason)
    if key is not None:
        # As for an ignored event: an unhandled name is never compared by its key.
        slot = primary_slot(key) if key[1] in HANDLED else None
        verdict = replace(verdict, key=key, slot=slot, tenant=key[0], name=key[1])
    if read.document is not None:
        verdict = replace(verdict, location_id=validation.lenient_location(read.document))
    if read.envelope is not None:
        envelope = read.envelope
        verdict = replace(
            verdict,
            tenant=envelope.tenant,
            name=envelope.name,
            published_at=envelope.published_at,
        )
    return verdict


def _off_tenant(verdict: Classified, tenant: str) -> Classified:
    return replace(
        verdict, status=Status.QUARANTINED, error=f"tenant {tenant!r} is not in INVSYNC_TENANTS"
    )
