"""Fixtures of the reliability tests: databases of their own, created and dropped per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import harness as h


@pytest.fixture
def own_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    reason = h.postgres_reachable()
    if reason is not None:
        if os.environ.get("INVSYNC_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable: {reason}")
        pytest.skip(f"PostgreSQL unreachable: {reason}")
    with h.fresh_postgres(request.node.name[:20].strip("[]_").replace("[", "_")) as url:
        yield url


@pytest.fixture
def own_sqlite(tmp_path: Path) -> str:
    return h.fresh_sqlite(tmp_path)
