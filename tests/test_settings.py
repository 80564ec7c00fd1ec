"""Configuration: defaults, parsing, and one clear line naming the variable when it is wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from inventory_sync.settings import (
    ConfigurationError,
    Settings,
    load_settings,
    unknown_variables,
)


class TestSettings:
    def test_defaults_are_the_embedded_set_up(self) -> None:
        settings = load_settings(_env_file=None)
        assert settings.database_url == "sqlite:///inventory-sync.db"
        assert settings.is_sqlite
        assert settings.erp_url is None
        assert settings.erp_max_attempts == 12
        assert settings.max_body_bytes == 10485760

    def test_lists_and_maps_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", "new-key, old-key")
        monkeypatch.setenv("INVSYNC_TENANTS", "acme,globex")
        monkeypatch.setenv("INVSYNC_RETURN_LOCATIONS", '{"2": "damaged", "3": "repair"}')
        settings = load_settings(_env_file=None)
        assert [k.get_secret_value() for k in settings.webhook_keys] == ["new-key", "old-key"]
        assert settings.tenants == ["acme", "globex"]
        assert settings.return_locations == {"2": "damaged", "3": "repair"}

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("INVSYNC_DATABASE_URL", "mysql://root@localhost/x"),
            ("INVSYNC_ERP_URL", "ftp://erp"),
            ("INVSYNC_ERP_SIGNING_SECRET", "not-a-secret"),
            ("INVSYNC_ERP_SIGNING_SECRET", "whsec_not*base64"),
            ("INVSYNC_ERP_SIGNING_SECRET", "whsec_c2hvcnQ="),
            ("INVSYNC_RETURN_LOCATIONS", "{not json"),
            ("INVSYNC_RETURN_LOCATIONS", '{"2": 5}'),
            ("INVSYNC_ERP_CONCURRENCY", "0"),
            ("INVSYNC_LOG_LEVEL", "loud"),
            ("INVSYNC_MAX_BODY_BYTES", "ten"),
            ("INVSYNC_NEWSTORE_URL", "acme.p.newstore.net"),
            ("INVSYNC_NEWSTORE_TOKEN_URL", "id.p.newstore.net/token"),
            ("INVSYNC_NEWSTORE_INTEGRATION_ID", "has spaces/and slashes"),
        ],
    )
    def test_bad_value_names_the_variable_in_one_line(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigurationError) as error:
            load_settings(_env_file=None)
        message = str(error.value)
        assert message.startswith(f"{variable}:")
        assert "\n" not in message
        assert value not in message or "SECRET" not in variable

    @pytest.mark.parametrize(
        "url",
        ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:///x"],
    )
    def test_database_urls_the_service_can_use(
        self, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        monkeypatch.setenv("INVSYNC_DATABASE_URL", url)
        assert load_settings(_env_file=None).database_url == url

    def test_another_postgresql_driver_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INVSYNC_DATABASE_URL", "postgresql+psycopg2://u@h/db")
        with pytest.raises(ConfigurationError, match="psycopg2 driver is not supported"):
            load_settings(_env_file=None)

    def test_a_newstore_client_id_needs_its_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INVSYNC_NEWSTORE_CLIENT_ID", "client")
        with pytest.raises(ConfigurationError) as error:
            load_settings(_env_file=None)
        assert str(error.value) == (
            "INVSYNC_NEWSTORE_CLIENT_ID and INVSYNC_NEWSTORE_CLIENT_SECRET go together"
        )
        monkeypatch.setenv("INVSYNC_NEWSTORE_CLIENT_SECRET", "secret")
        assert load_settings(_env_file=None).newstore_client_id == "client"

    def test_retry_bounds_must_be_ordered(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INVSYNC_ERP_RETRY_BASE_SECONDS", "60")
        monkeypatch.setenv("INVSYNC_ERP_RETRY_MAX_SECONDS", "5")
        with pytest.raises(ConfigurationError, match="INVSYNC_ERP_RETRY_MAX_SECONDS"):
            load_settings(_env_file=None)


class TestUnknownVariables:
    def test_a_misspelt_variable_names_the_closest_setting(self) -> None:
        environ = {
            "INVSYNC_WEBHOOK_KEY": "k",
            "invsync_erp_ur": "x",
            "INVSYNC_DATABASE_URL": "sqlite://",
            "INVSYNC_COMPLETELY_DIFFERENT": "1",
            "PATH": "/bin",
        }
        assert unknown_variables(environ) == [
            "INVSYNC_COMPLETELY_DIFFERENT is not a setting and is ignored",
            "INVSYNC_WEBHOOK_KEY is not a setting and is ignored; did you mean "
            "INVSYNC_WEBHOOK_KEYS?",
            "invsync_erp_ur is not a setting and is ignored; did you mean INVSYNC_ERP_URL?",
        ]

    def test_the_variables_ci_and_compose_set_are_known(self) -> None:
        root = Path(__file__).resolve().parents[1]
        text = (root / ".ci" / "run").read_text() + (root / "docker-compose.yml").read_text()
        names = set(re.findall(r"\bINVSYNC_[A-Z_]+", text))
        assert "INVSYNC_REQUIRE_POSTGRES" in names
        assert unknown_variables(dict.fromkeys(names, "1")) == []

    def test_the_env_file_is_read_too(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        for name in [n for n in os.environ if n.upper().startswith("INVSYNC_")]:
            monkeypatch.delenv(name)
        (tmp_path / ".env").write_text("INVSYNC_LOG_LEVL=debug\nINVSYNC_LOG_LEVEL=info\n")
        assert unknown_variables() == [
            "INVSYNC_LOG_LEVL is not a setting and is ignored; did you mean INVSYNC_LOG_LEVEL?"
        ]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `INVSYNC_"))
    documented = set(re.findall(r"INVSYNC_[A-Z_]+[A-Z]", table))
    assert {f"INVSYNC_{name.upper()}" for name in Settings.model_fields} <= documented
