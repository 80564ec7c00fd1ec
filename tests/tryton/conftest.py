"""One real Tryton server per test session (tests/tryton/kit.py).

Skipped with the reason when trytond is not installed, except with INVSYNC_REQUIRE_TRYTON=1
(set by .ci/run, which installs the test extra), where it must run. Every Tryton test module is in
the xdist group `tryton` (`pytestmark`; pyproject's `--dist loadgroup`), so one worker starts
the server once and runs them all.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from tests.reliability.conftest import own_postgres
from tests.tryton import kit

__all__ = ["own_postgres"]  # a PostgreSQL database of the crash test's own

REQUIRE_TRYTON = os.environ.get("INVSYNC_REQUIRE_TRYTON") == "1"


@pytest.fixture(scope="session")
def tryton_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[kit.Server]:
    missing = [m for m in ("trytond", "trytond.modules.stock", "proteus") if not _importable(m)]
    if missing:
        reason = f"Tryton is not installed ({', '.join(missing)}); pip install -e '.[test]'"
        if REQUIRE_TRYTON:
            pytest.fail(f"Tryton required (INVSYNC_REQUIRE_TRYTON=1): {reason}")
        pytest.skip(reason)
    # The set-up database is kept in pytest's cache: later runs start in a second or two.
    kept = getattr(request.config, "cache", None)
    cache = kept.mkdir("tryton") if kept is not None else None
    server = kit.start(tmp_path_factory.mktemp("tryton"), cache)
    yield server
    server.stop()


@pytest.fixture
def tryton(tryton_server: kit.Server) -> Iterator[kit.Client]:
    client = kit.Client(tryton_server)
    yield client
    client.close()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
