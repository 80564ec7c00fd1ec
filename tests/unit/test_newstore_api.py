"""The NewStore client's pure parts: reading NewStore's answers, judging failures, the replay
window's rules."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from inventory_sync.clock import utcnow
from inventory_sync.newstore.payloads import HANDLED, SALE
from inventory_sync.newstore_api import client, failures, integrations
from inventory_sync.newstore_api.failures import Stored


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("3", 3, 3),
        ("100000", client.MAX_WAIT_SECONDS, client.MAX_WAIT_SECONDS),
        ("soon", 2, 2),
        (None, 2, 2),
    ],
)
def test_retry_after(header: str | None, low: float, high: float) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    assert low <= client._retry_after(httpx.Response(429, headers=headers), 2.0) <= high


def test_retry_after_as_a_date() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    waited = client._retry_after(httpx.Response(429, headers={"Retry-After": when}), 2.0)
    assert 15 <= waited <= 20


def test_reason_reads_problems_oauth_errors_and_text() -> None:
    problem = {"title": "resource_not_found", "detail": "no x", "request_id": "r1"}
    assert client._reason(httpx.Response(404, json=problem)) == (
        "resource_not_found no x (request id r1)"
    )
    oauth = {"error": "invalid_client", "error_description": "Invalid client"}
    assert client._reason(httpx.Response(401, json=oauth)) == "invalid_client Invalid client"
    assert client._reason(httpx.Response(502, text="bad\n gateway")) == "bad gateway"


def test_an_integration_without_filter_receives_everything() -> None:
    found = integrations.Integration.parse({"id": "x", "callback_parameters": {"api_key": "k"}})
    assert found.filter_difference() == ([], ["(every event: no filter)"])
    assert "api_key" not in str(found.public())
    assert "api_key" not in repr(found)
    exact = integrations.Integration.parse(
        {"id": "x", "filter_conditions": {"event_filter": sorted(HANDLED)}}
    )
    assert exact.filter_difference() == ([], [])


def test_attempts_name_their_publication_by_either_field() -> None:
    base = {"event_name": "return.processed", "entity_id": "e1"}
    by_id = failures.Attempt.parse(base | {"id": "p1"})
    by_name = failures.Attempt.parse(base | {"publication_id": "p2", "id": "other"})
    assert by_id is not None
    assert by_id.publication_id == "p1"
    assert by_name is not None
    assert by_name.publication_id == "p2"
    assert failures.Attempt.parse({"event_name": "x"}) is None


@pytest.mark.parametrize(
    ("rows", "verdict"),
    [
        ([], failures.MISSING),
        ([Stored(None, None, "accepted")], failures.RECEIVED),
        ([Stored(1, 2, "accepted")], failures.PARTIAL),
        ([Stored(1, 2, "accepted"), Stored(2, 2, "quarantined")], failures.QUARANTINED),
        ([Stored(2, 2, "accepted"), Stored(1, 2, "accepted")], failures.RECEIVED),
    ],
)
def test_verdicts(rows: list[Stored], verdict: str) -> None:
    assert failures.verdict(rows) == verdict


def test_failures_group_attempts_per_event_and_retry_the_latest() -> None:
    def attempt(at: str, publication: str) -> failures.Attempt:
        return failures.Attempt("return.processed", "e1", at, 9, publication)

    (only,) = failures.match(
        [attempt("2024-05-01T10:00:00Z", "late"), attempt("2024-05-01T09:00:00Z", "early")], {}
    )
    assert (only.attempts, only.publication_id, only.verdict) == (2, "late", failures.MISSING)


def test_a_sale_attempt_names_its_logical_timestamp_by_payload_or_field() -> None:
    sale = {"event_name": SALE, "entity_id": "f1"}
    by_payload = failures.Attempt.parse(sale | {"payload": {"id": "f1", "logical_timestamp": 7}})
    by_field = failures.Attempt.parse(sale | {"logical_timestamp": 8})
    neither = failures.Attempt.parse(sale | {"logical_timestamp": "8"})
    other = failures.Attempt.parse(
        {"event_name": "return.processed", "entity_id": "r1"} | {"logical_timestamp": 9}
    )
    assert by_payload is not None
    assert by_payload.key == (SALE, "f1", 7)
    assert by_field is not None
    assert by_field.key == (SALE, "f1", 8)
    assert neither is not None
    assert neither.key == (SALE, "f1", None)
    assert other is not None
    assert other.key == ("return.processed", "r1", None)


def test_sales_are_judged_on_their_logical_timestamp_else_unknown() -> None:
    def attempt(stamp: int | None) -> failures.Attempt:
        return failures.Attempt(SALE, "f1", "2024-05-01T10:00:00Z", 9, f"p{stamp}", stamp)

    stored = {(SALE, "f1", 1): [Stored(None, None, "accepted")]}
    found = failures.match([attempt(1), attempt(2), attempt(None)], stored)
    assert {(f.logical_timestamp, f.verdict) for f in found} == {
        (1, failures.RECEIVED),
        (2, failures.MISSING),
        (None, failures.UNKNOWN),
    }
    assert failures.UNKNOWN in failures.TO_RETRY


def test_replay_windows() -> None:
    now = utcnow()
    hour = timedelta(hours=1)
    kept = now - 10 * hour

    def refusal(since: datetime, until: datetime, covered: datetime | None) -> str:
        return integrations.coverage_refusal(since, until, covered, kept) or ""

    assert refusal(now - 2 * hour, now - hour, now - 3 * hour) == ""
    assert "first event" in refusal(now - 2 * hour, now - hour, now - 90 * timedelta(minutes=1))
    assert "no event" in refusal(now - 2 * hour, now - hour, None)
    assert "before --until" in refusal(now - hour, now - 2 * hour, now - 3 * hour)
    assert "future" in refusal(now - hour, now + hour, now - 3 * hour)
    purged = refusal(now - 11 * hour, now - hour, now - 12 * hour)
    assert "INVSYNC_RETAIN_BODIES_DAYS" in purged
    since = datetime(2024, 5, 1, tzinfo=UTC)
    assert integrations.replay_id("ours", since, since + hour) == (
        "ours-replay-20240501T000000Z-20240501T010000Z"
    )
