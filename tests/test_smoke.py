import gc
import logging

import pytest
from fastapi.testclient import TestClient

from inventory_sync.api.app import app_factory
from inventory_sync.settings import Settings
from tests import factories as f


def test_receipt_is_accepted_and_in_the_ledger(client: TestClient) -> None:
    answer = f.post(client, f.received(("A", 3)))
    assert answer["status"] == "accepted"
    [movement] = f.ledger(client)
    assert movement["quantity"] == 3
    assert movement["kind"] == "receipt"


def test_serve_freezes_what_start_up_loaded(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    # Full GC passes over the start-up objects stalled requests for about 100 ms.
    monkeypatch.setenv("INVSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", f.WEBHOOK_KEY)
    monkeypatch.setenv("INVSYNC_ADMIN_TOKENS", f.ADMIN_TOKEN)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    gc.unfreeze()
    try:
        app_factory()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        root.handlers[:] = handlers
        root.setLevel(level)
