"""A local NewStore, and the command line configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests import factories as f
from tests.newstore import fake as ns
from tests.newstore.fake import FakeNewStore


@pytest.fixture
def newstore() -> Iterator[FakeNewStore]:
    with ns.running() as server:
        yield server


@pytest.fixture
def runner(newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name, value in {
        "INVSYNC_WEBHOOK_KEYS": f"{f.WEBHOOK_KEY},previous-webhook-key",
        "INVSYNC_NEWSTORE_URL": newstore.url,
        "INVSYNC_NEWSTORE_TENANT": f.TENANT,
        "INVSYNC_NEWSTORE_CLIENT_ID": ns.CLIENT_ID,
        "INVSYNC_NEWSTORE_CLIENT_SECRET": ns.CLIENT_SECRET,
        "INVSYNC_NEWSTORE_TOKEN_URL": newstore.url + ns.TOKEN_PATH,
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()
