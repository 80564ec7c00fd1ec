"""Intake and replay rules on an in-memory store: what is stored, under which slot, with which
answer, for every kind of body; and what a failing database leads to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import pytest

from inventory_sync.errors import DatabaseUnavailable, InputRefused
from inventory_sync.intake import service
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.intake.recent import RecentBodies
from tests import factories as f
from tests.fakes import FakeStore

RULES = Rules(return_locations={"2": "damaged"})


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def receive(
    store: FakeStore, body: dict[str, Any] | bytes, recent: RecentBodies | None = None
) -> service.Outcome:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    outcome: service.Outcome = run(
        service.receive(store, raw, "application/json", RULES, recent or RecentBodies())
    )
    return outcome


class TestReceive:
    def test_an_accepted_event_is_one_write_with_its_effect(self) -> None:
        store = FakeStore()
        outcome = receive(store, f.received(("A", 2), ("B", 3)))
        assert (outcome.status, outcome.event_id) == (Status.ACCEPTED, 1)
        assert store.writes == 1
        write = store.events[1].write
        assert write is not None
        assert write.effect.movements is not None
        assert write.effect.movements.quantity == [2, 3]
        assert write.document is not None
        assert json.loads(write.document.body)["type"] == "inventory.receipt"

    @pytest.mark.parametrize("send_sales", [False, True])
    def test_a_sale_is_one_write_and_a_document_only_when_sales_are_sent(
        self, send_sales: bool
    ) -> None:
        store = FakeStore()
        rules = Rules(send_sales=send_sales)
        raw = json.dumps(f.sold("A", "B")).encode()
        outcome = run(service.receive(store, raw, "application/json", rules, RecentBodies()))
        assert outcome.status is Status.ACCEPTED
        write = store.events[1].write
        assert write is not None
        assert write.effect.movements is not None
        assert write.effect.movements.quantity == [-1, -1]
        assert (write.document is not None) is send_sales

    def test_the_same_bytes_again_are_a_duplicate_and_write_nothing(self) -> None:
        store, recent = FakeStore(), RecentBodies()
        body = json.dumps(f.received(("A", 2))).encode()
        first = receive(store, body, recent)
        again = receive(store, body, recent)
        assert again.status is Status.DUPLICATE
        assert again.event_id == first.event_id
        assert store.writes == 1

    def test_the_same_payload_in_other_bytes_is_a_duplicate(self) -> None:
        store = FakeStore()
        body = f.received(("A", 2))
        first = receive(store, body)
        reordered = {
            "payload": body["payload"],
            **{k: v for k, v in body.items() if k != "payload"},
        }
        reordered["published_at"] = "2024-06-01T00:00:00Z"  # the envelope may differ
        again = receive(store, json.dumps(reordered, indent=2).encode())
        assert (again.status, again.event_id) == (Status.DUPLICATE, first.event_id)

    def test_other_content_under_a_taken_key_is_quarantined_once(self) -> None:
        store = FakeStore()
        body = f.received(("A", 2))
        first = receive(store, body)
        body["payload"]["items"][0]["quantity"] = 3
        conflict = receive(store, body)
        assert conflict.status is Status.QUARANTINED
        assert conflict.detail == (
            f"dedupe key already used by event {first.event_id} with different content"
        )
        assert store.events[conflict.event_id].write is None
        assert receive(store, body).event_id == conflict.event_id  # its variant slot is taken
        assert store.writes == 2

    def test_a_body_without_a_key_is_kept_under_its_bytes(self) -> None:
        store = FakeStore()
        first = receive(store, b"not json")
        again = receive(store, b"not json")
        assert first.status is again.status is Status.QUARANTINED
        assert again.event_id == first.event_id
        assert store.events[1].columns["slot"].startswith("raw:")

    def test_an_unhandled_event_is_ignored_and_written_without_effect(self) -> None:
        store = FakeStore()
        outcome = receive(store, f.envelope("order.created", {"id": "O-1"}))
        assert outcome.status is Status.IGNORED
        assert store.events[1].write is None

    def test_a_refused_value_keeps_the_body_quarantined_with_the_reason(self) -> None:
        store = FakeStore()
        store.fail_next = InputRefused("index row size 3000 (ProgramLimitExceededError)")
        outcome = receive(store, f.received(("A", 1)))
        assert outcome.status is Status.QUARANTINED
        assert outcome.detail == (
            "could not be processed: index row size 3000 (ProgramLimitExceededError)"
        )
        assert store.events[outcome.event_id].columns["slot"].startswith("raw:")

    def test_a_defect_is_named_by_its_first_line_never_its_statement(self) -> None:
        store = FakeStore()
        store.fail_next = RuntimeError("it broke\n[SQL: INSERT INTO inbound_event ...]")
        outcome = receive(store, f.received(("A", 1)))
        assert outcome.status is Status.QUARANTINED
        assert outcome.detail == "could not be processed: it broke (RuntimeError)"

    def test_an_unavailable_database_stores_nothing_and_says_so(self) -> None:
        store = FakeStore()
        store.fail_next = DatabaseUnavailable("gone")
        with pytest.raises(DatabaseUnavailable):
            receive(store, f.received(("A", 1)))
        assert store.events == {}

    def test_a_redelivery_after_the_database_was_emptied_is_stored_again(self) -> None:
        store, recent = FakeStore(), RecentBodies()
        body = json.dumps(f.received(("A", 1))).encode()
        receive(store, body, recent)
        store.events.clear()
        store.by_slot.clear()
        assert receive(store, body, recent).status is Status.ACCEPTED


class TestReplay:
    def quarantined(self, store: FakeStore, body: dict[str, Any]) -> int:
        strict = Rules(tenants=frozenset({"someone-else"}))
        raw = json.dumps(body).encode()
        outcome = run(service.receive(store, raw, None, strict, RecentBodies()))
        assert outcome.status is Status.QUARANTINED
        return int(outcome.event_id)

    def test_a_quarantined_event_is_accepted_with_todays_rules(self) -> None:
        store = FakeStore()
        event_id = self.quarantined(store, f.received(("A", 4)))
        outcome = run(service.replay(store, event_id, RULES))
        assert outcome.status is Status.ACCEPTED
        assert store.events[event_id].write is not None
        again = run(service.replay(store, event_id, RULES))
        assert again.status is Status.ACCEPTED
        assert again.detail == "event is accepted; nothing to replay"

    def test_a_key_held_by_another_event_keeps_it_quarantined(self) -> None:
        store = FakeStore()
        body = f.received(("A", 4))
        conflict = dict(body, payload={**body["payload"], "items": f.lines(("A", 5))})
        first = receive(store, body)
        held = receive(store, conflict)
        outcome = run(service.replay(store, held.event_id, RULES))
        assert outcome.status is Status.QUARANTINED
        assert outcome.detail == (
            f"dedupe key already used by event {first.event_id} with different content"
        )

    def test_a_refused_value_keeps_it_quarantined_with_the_reason(self) -> None:
        store = FakeStore()
        event_id = self.quarantined(store, f.received(("A", 4)))
        store.fail_next = InputRefused("NumericValueOutOfRangeError: out of range")
        outcome = run(service.replay(store, event_id, RULES))
        assert outcome.status is Status.QUARANTINED
        assert store.events[event_id].columns["error"] == outcome.detail
        assert store.events[event_id].columns["status"] == "quarantined"

    def test_an_unknown_event_is_none(self) -> None:
        assert run(service.replay(FakeStore(), 7, RULES)) is None
