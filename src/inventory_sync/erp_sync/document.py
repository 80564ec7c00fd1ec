"""The ERP document of one accepted event (PRODUCT.md section 7)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pydantic_core

from inventory_sync.db import iso

if TYPE_CHECKING:
    from inventory_sync.ledger.domain import Effect
    from inventory_sync.ledger.service import Source

# Fixed forever: changing it would change every message id and defeat the ERP's dedupe.
_NAMESPACE = uuid.UUID("5b0e7c1a-3f5d-4c2e-9a8b-6d1f0e2c4b7a")


def message_id(tenant: str, name: str, payload_id: str, chunk_number: int) -> str:
    """Stable id from the dedupe key: a redelivered or replayed event gets the same id."""
    key = json.dumps([tenant, name, payload_id, chunk_number], ensure_ascii=False)
    return str(uuid.uuid5(_NAMESPACE, key))


def build(message_id: str, source: Source, effect: Effect) -> str:
    document: dict[str, Any] = {
        "id": message_id,
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
        "lines": [line.as_json() for line in effect.document_lines],
    }
    # The same compact UTF-8 JSON as json.dumps(ensure_ascii=False, separators=(",", ":")),
    # encoded in Rust at a third of the cost; this runs once per accepted event.
    return pydantic_core.to_json(document).decode()
