"""The ERP document of one accepted event (PRODUCT.md section 7).

Built once, when the event is accepted, and stored with it in the outbox: the worker sends the
stored text as it is, so a document never changes once its event is committed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pydantic_core

from inventory_sync.clock import iso
from inventory_sync.ledger.effects import MAIN, Effect
from inventory_sync.newstore.validation import Key, key_text

# Fixed forever: changing it would change every message id and defeat the ERP's dedupe.
_NAMESPACE = uuid.UUID("5b0e7c1a-3f5d-4c2e-9a8b-6d1f0e2c4b7a")


@dataclass(frozen=True, slots=True)
class Source:
    """The NewStore event an effect comes from: its dedupe key and envelope."""

    tenant: str
    name: str
    payload_id: str
    chunk_number: int
    total_chunks: int | None
    published_at: datetime | None
    logical_timestamp: int | None = None
    """A sale's: it ends the dedupe key in place of the chunk number."""

    @property
    def key(self) -> Key:
        """The dedupe key (`newstore.validation.key_of`)."""
        part = self.chunk_number if self.logical_timestamp is None else self.logical_timestamp
        return (self.tenant, self.name, self.payload_id, part)


@dataclass(frozen=True, slots=True)
class Document:
    """An outbox message: its stable id, its type and its JSON text."""

    message_id: str
    type: str
    body: str


def message_id(tenant: str, name: str, payload_id: str, key_part: int) -> str:
    """Stable id from the dedupe key (`key_part`: the chunk number, a sale's logical
    timestamp): a redelivered or replayed event gets the same id.

    `uuid.uuid5(_NAMESPACE, key_text(key))`, written out: once per accepted event, the uuid
    module's objects cost three times as much."""
    key = key_text((tenant, name, payload_id, key_part))
    digest = bytearray(hashlib.sha1(_NAMESPACE.bytes + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _lines(effect: Effect) -> list[dict[str, Any]]:
    """One line per movement; an ASN, which moves nothing yet, has one per shipped line."""
    if effect.shipment is not None:
        s = effect.shipment
        return [
            _with_identifiers(
                {"product_id": p, "stock_location": MAIN, "quantity_delta": 0},
                ids,
                quantity_shipped=q,
            )
            for p, q, ids in zip(s.product_id, s.quantity, s.external_identifiers, strict=True)
        ]
    m = effect.movements
    if m is None:
        return []
    if effect.counts is not None:
        c = effect.counts
        return [
            {
                "product_id": p,
                "stock_location": where,
                "quantity_delta": delta,
                "counted": counted,
                "stock_on_hand": on_record,
            }
            for p, where, delta, counted, on_record in zip(
                m.product_id, m.stock_location, m.quantity, c.counted, c.stock_on_hand, strict=True
            )
        ]
    lines = [
        {"product_id": p, "stock_location": where, "quantity_delta": delta}
        for p, where, delta in zip(m.product_id, m.stock_location, m.quantity, strict=True)
    ]
    if m.external_identifiers is not None:
        for line, ids in zip(lines, m.external_identifiers, strict=True):
            if ids is not None:
                line["external_identifiers"] = ids
    return lines


def _with_identifiers(
    line: dict[str, Any], identifiers: dict[str, Any] | None, **more: Any
) -> dict[str, Any]:
    if identifiers is not None:
        line["external_identifiers"] = identifiers
    line.update(more)
    return line


def build(source: Source, effect: Effect) -> Document:
    """The document the ERP receives for `effect`."""
    message = message_id(*source.key)
    document: dict[str, Any] = {
        "id": message,
        "type": effect.document_type.value,
        "tenant": source.tenant,
        "location_id": effect.location_id,
        "occurred_at": iso(effect.occurred_at),
        "source": {
            "event_name": source.name,
            "event_id": source.payload_id,
            "chunk_number": source.chunk_number,
            "total_chunks": source.total_chunks,
            "published_at": iso(source.published_at),
        },
        "references": effect.references,
        "lines": _lines(effect),
    }
    try:
        # Compact UTF-8 JSON, as json.dumps(ensure_ascii=False, separators=(",", ":")) writes
        # it, at a quarter of the cost of pydantic's encoder; once per accepted event.
        text = orjson.dumps(document).decode()
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which external identifiers may hold.
        text = pydantic_core.to_json(document).decode()
    return Document(message, effect.document_type.value, text)
