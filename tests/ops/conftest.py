"""What the ops tests share: a configured command line, and the fake ERP of the delivery tests
(to make dead messages for retry)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from inventory_sync.settings import Settings
from tests import factories as f
from tests.erp_sync.conftest import erp  # noqa: F401 (a fixture)


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> CliRunner:
    """A command line configured like `settings`, away from any `.env` file."""
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("INVSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("INVSYNC_ADMIN_TOKENS", f.ADMIN_TOKEN)
    monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", f.WEBHOOK_KEY)
    monkeypatch.setenv("INVSYNC_RETURN_LOCATIONS", '{"2": "damaged"}')
    return CliRunner()
