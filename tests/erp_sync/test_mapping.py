"""INVSYNC_ERP_MAPPING: NewStore ids as the ERP knows them, from JSON or YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_sync.erp_sync import mapping
from inventory_sync.erp_sync.heartbeat import State
from inventory_sync.settings import ConfigurationError, Settings, load_settings
from inventory_sync.storage.database import Database
from tests.erp_sync.conftest import make_worker, run


def test_ids_absent_from_the_file_keep_their_own_value(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(
        '{"locations": {"US-NYC-01": "WH-NYC"}, "stock_locations": {"US-NYC-01/damaged": '
        '"NYC-DMG"}, "products": {"100234-M": "SKU-100234-M"}, "party": "NS"}'
    )
    found = mapping.load(path)
    assert found.location("US-NYC-01") == "WH-NYC"
    assert found.location("US-BOS-02") == "US-BOS-02"
    assert found.stock_location("US-NYC-01", "damaged") == "NYC-DMG"
    assert found.stock_location("US-BOS-02", "damaged") == "US-BOS-02/damaged"
    assert found.product("100234-M") == "SKU-100234-M"
    assert found.product("other") == "other"
    assert found.party == "NS"
    assert mapping.load(None) == mapping.Mapping()


def test_yaml_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yml"
    path.write_text("products:\n  A: B\n")
    assert mapping.load(path).products == {"A": "B"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "cannot read"),
        ('{"warehouses": {}}', "expected an object with locations"),
        ('{"products": {"A": 5}}', "products must map ids to non-empty strings"),
        ('{"party": ""}', "party must be a non-empty string"),
    ],
)
def test_a_bad_file_names_the_variable(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=reason) as error:
        mapping.load(path)
    assert str(error.value).startswith("INVSYNC_ERP_MAPPING: ")


def test_settings_refuse_a_missing_file_and_tryton_without_a_login(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INVSYNC_ERP_MAPPING", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError, match=r"^INVSYNC_ERP_MAPPING: .*no such file"):
        load_settings(_env_file=None)
    monkeypatch.delenv("INVSYNC_ERP_MAPPING")
    monkeypatch.setenv("INVSYNC_ERP_ADAPTER", "tryton")
    monkeypatch.setenv("INVSYNC_ERP_URL", "http://erp:8000/db/")
    with pytest.raises(ConfigurationError, match=r"^INVSYNC_ERP_USER: .*needs a login$"):
        load_settings(_env_file=None)
    monkeypatch.setenv("INVSYNC_ERP_ADAPTER", "sap")
    with pytest.raises(ConfigurationError, match=r"^INVSYNC_ERP_ADAPTER: "):
        load_settings(_env_file=None)


def test_a_worker_whose_mapping_file_is_bad_waits_misconfigured(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "mapping.json"
    path.write_text('{"products": []}')
    config = settings.model_copy(
        update={
            "erp_adapter": "tryton",
            "erp_url": "http://127.0.0.1:9/db/",
            "erp_user": "admin",
            "erp_mapping": path,
        }
    )
    worker = make_worker(config, db)
    run(worker.run_for(0.1))
    assert worker.status() == State(
        "misconfigured",
        last_error="INVSYNC_ERP_MAPPING: products must map ids to non-empty strings",
    )
