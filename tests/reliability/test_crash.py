"""Crash safety: SIGKILL the API and the worker under load; nothing acknowledged is lost.

Real `inventory-sync serve --no-worker` and `inventory-sync worker` subprocesses, a sender that
redelivers anything not answered 200 (as NewStore does), and a local ERP. At the end the ledger
equals the model of the distinct events, every acknowledged event is stored, and every ERP
document was delivered at least once. The long version is `python3 dev.py soak`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import scenarios

pytestmark = pytest.mark.slow


def test_postgres_api_and_worker_killed_under_load(own_postgres: str, tmp_path: Path) -> None:
    figures = scenarios.crash(
        own_postgres, tmp_path, events=240, api_kills=2, worker_kills=1, rate=40
    )
    print(figures.line())
    assert figures.api_kills == 2
    assert figures.worker_kills == 1
    # The kills hit the load: the sender met refused connections and had to redeliver.
    assert sum(figures.refused.values()) > 0


def test_sqlite_api_killed_under_load(own_sqlite: str, tmp_path: Path) -> None:
    figures = scenarios.crash(
        own_sqlite, tmp_path, events=120, api_kills=2, worker_kills=0, rate=30
    )
    print(figures.line())
    assert figures.api_kills == 2
    assert sum(figures.refused.values()) > 0
