"""Database outage under load: 503 with Retry-After meanwhile, recovery by itself, no loss.

The shared PostgreSQL is not restarted here (other tests use it); a TCP proxy between the
service processes and PostgreSQL cuts every connection and turns new ones away for a few
seconds. `python3 dev.py soak` restarts the real server instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.reliability import scenarios
from tests.reliability.proxy import TcpProxy

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 4.0


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}"))


def test_cut_database_gives_503_then_recovers_with_nothing_lost(
    own_postgres: str, tmp_path: Path
) -> None:
    parts = urlsplit(own_postgres)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)

    def interrupt() -> None:
        proxy.cut()
        time.sleep(OUTAGE_SECONDS)
        proxy.restore()

    try:
        figures = scenarios.outage(
            own_postgres, through(proxy, own_postgres), tmp_path, events=200, interrupt=interrupt
        )
    finally:
        proxy.close()
    print(figures.line(), dict(figures.answers_during_outage))
    # The outage was felt: intake answered 503 (with Retry-After, checked by the sender)
    # and so did the reads, and nothing else but 200 came back.
    assert figures.refused["503"] > 0
    assert figures.answers_during_outage["503"] > 0
    assert figures.max_answer_seconds < 12
