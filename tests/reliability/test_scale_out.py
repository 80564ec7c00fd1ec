"""Scale-out: two API processes and two workers against one PostgreSQL, under load.

Every event is sent twice, interleaved over six connections spread across both APIs, so the
two processes race on the same dedupe keys. The ERP records which ids are in flight: no
document may be delivered concurrently by both workers, and every one must arrive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import scenarios

pytestmark = pytest.mark.slow


def test_two_apis_and_two_workers_on_one_database(own_postgres: str, tmp_path: Path) -> None:
    figures = scenarios.scale_out(own_postgres, tmp_path, events=200)
    print(figures.line())
    assert figures.statuses["duplicate"] > 0
    assert figures.documents == figures.events
