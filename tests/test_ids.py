"""Inbox slots and ERP message ids are hashes of the dedupe key's JSON text: they must never
change, or a redelivery after an upgrade would be stored again and the ERP's dedupe defeated."""

from __future__ import annotations

import hashlib
import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from inventory_sync.intake.classify import primary_slot
from inventory_sync.ledger.documents import message_id

NAMESPACE = uuid.UUID("5b0e7c1a-3f5d-4c2e-9a8b-6d1f0e2c4b7a")
storable = st.text().filter(lambda s: "\x00" not in s and s.encode("utf-8", "ignore").decode() == s)


@given(storable, storable, storable, st.integers(min_value=1, max_value=100_000))
def test_the_key_text_is_what_json_dumps_writes(
    tenant: str, name: str, payload_id: str, chunk: int
) -> None:
    text = json.dumps([tenant, name, payload_id, chunk], ensure_ascii=False)
    assert (
        primary_slot((tenant, name, payload_id, chunk)) == hashlib.sha256(text.encode()).hexdigest()
    )
    assert message_id(tenant, name, payload_id, chunk) == str(uuid.uuid5(NAMESPACE, text))


def test_a_known_message_id_stays_the_same() -> None:
    assert message_id("acme", "inventory_transaction.items_received", "8f0c2d7e", 1) == str(
        uuid.uuid5(NAMESPACE, '["acme", "inventory_transaction.items_received", "8f0c2d7e", 1]')
    )
