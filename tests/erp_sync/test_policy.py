"""The pure parts: backoff, Retry-After parsing, classification and the circuit breaker."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from inventory_sync.erp_sync.breaker import Breaker
from inventory_sync.erp_sync.client import Outcome, classify
from inventory_sync.erp_sync.retry import Backoff, parse_retry_after

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class TestBackoff:
    def test_delay_stays_between_base_and_a_doubling_ceiling(self) -> None:
        backoff = Backoff(5, 3600)
        rng = random.Random(7)
        for failures in range(1, 40):
            ceiling = min(3600, 5 * 2 ** (failures - 1))
            assert backoff.ceiling(failures) == ceiling
            for _ in range(20):
                assert 5 <= backoff.delay(failures, rng=rng) <= ceiling

    def test_jitter_spreads_delays(self) -> None:
        delays = {Backoff(1, 100).delay(8, rng=random.Random(n)) for n in range(20)}
        assert len(delays) == 20

    def test_huge_failure_counts_are_capped(self) -> None:
        assert Backoff(5, 60).ceiling(10_000) == 60

    def test_retry_after_is_a_floor_capped_by_max(self) -> None:
        backoff = Backoff(1, 600)
        assert backoff.delay(1, retry_after=300, rng=random.Random(1)) == 300
        assert backoff.delay(1, retry_after=10_000) == 600
        assert backoff.delay(1, retry_after=0) == 1

    def test_rejects_inverted_bounds(self) -> None:
        with pytest.raises(ValueError, match="base_seconds"):
            Backoff(10, 5)


class TestRetryAfter:
    def test_seconds(self) -> None:
        assert parse_retry_after("120") == 120.0
        assert parse_retry_after(" 0 ") == 0.0

    def test_http_date(self) -> None:
        later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
        assert parse_retry_after(later, NOW) == 90.0

    def test_past_date_means_now(self) -> None:
        earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
        assert parse_retry_after(earlier, NOW) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
    def test_garbage_is_ignored(self, value: str | None) -> None:
        assert parse_retry_after(value, NOW) is None


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, Outcome.DELIVERED),
            (201, Outcome.DELIVERED),
            (204, Outcome.DELIVERED),
            (408, Outcome.RETRY),
            (425, Outcome.RETRY),
            (429, Outcome.RETRY),
            (500, Outcome.RETRY),
            (503, Outcome.RETRY),
            (599, Outcome.RETRY),
            (301, Outcome.DEAD),
            (400, Outcome.DEAD),
            (401, Outcome.DEAD),
            (404, Outcome.DEAD),
            (409, Outcome.DEAD),
            (422, Outcome.DEAD),
        ],
    )
    def test_status(self, status: int, outcome: Outcome) -> None:
        assert classify(status) is outcome


class TestBreaker:
    def breaker(self) -> Breaker:
        return Breaker(3, Backoff(1, 8), random.Random(3))

    def test_opens_after_threshold_failures_in_a_row(self) -> None:
        breaker = self.breaker()
        assert not breaker.failed(0, probe=False)
        assert not breaker.failed(0, probe=False)
        assert breaker.failed(0, probe=False)
        assert breaker.is_open
        # The first probe waits the base delay (the first ceiling is the base itself).
        assert breaker.seconds_to_probe(0) == 1.0
        assert not breaker.probe_due(0.5)
        assert breaker.probe_due(1.0)

    def test_a_success_in_between_resets_the_count(self) -> None:
        breaker = self.breaker()
        breaker.failed(0, probe=False)
        breaker.failed(0, probe=False)
        assert not breaker.succeeded()
        breaker.failed(0, probe=False)
        assert not breaker.is_open

    def test_failed_probes_push_the_next_probe_out_up_to_the_cap(self) -> None:
        breaker = self.breaker()
        for _ in range(3):
            breaker.failed(0, probe=False)
        now = 0.0
        gaps = []
        for _ in range(12):
            now = breaker.next_probe_at
            breaker.failed(now, probe=True)
            gaps.append(breaker.next_probe_at - now)
        assert all(1 <= gap <= 8 for gap in gaps)
        assert max(gaps[-4:]) > 2  # grows beyond the base
        assert breaker.is_open

    def test_late_failures_of_earlier_requests_do_not_delay_the_probe(self) -> None:
        breaker = self.breaker()
        for _ in range(3):
            breaker.failed(0, probe=False)
        due = breaker.next_probe_at
        breaker.failed(0.5, probe=False)
        assert breaker.next_probe_at == due

    def test_retry_after_delays_the_probe(self) -> None:
        breaker = self.breaker()
        for _ in range(3):
            breaker.failed(0, probe=False, retry_after=6)
        assert breaker.next_probe_at == 6

    def test_first_success_closes(self) -> None:
        breaker = self.breaker()
        for _ in range(3):
            breaker.failed(0, probe=False)
        assert breaker.succeeded()
        assert not breaker.is_open
        assert breaker.failures_in_a_row == 0
