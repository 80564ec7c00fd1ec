"""Configuration from `INVSYNC_*` environment variables (and a `.env` file)."""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_FILE = "inventory-sync.db"
# The most lines the payload models read from one event; INVSYNC_MAX_LINES_PER_EVENT is at
# most this. Validation stops at it, so a hostile body cannot make it build millions of lines.
LINES_LIMIT = 100_000

# What the netsuite adapter cannot work without (its token-based authentication and the
# account an inventory adjustment books against).
NETSUITE_REQUIRED = (
    "netsuite_account_id",
    "netsuite_consumer_key",
    "netsuite_consumer_secret",
    "netsuite_token_id",
    "netsuite_token_secret",
    "netsuite_adjustment_account",
)

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ConfigurationError(Exception):
    """Bad configuration; the message names the variable and fits on one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INVSYNC_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(default=f"sqlite:///{DEFAULT_SQLITE_FILE}")
    webhook_keys: SecretList = Field(default_factory=list)
    tenants: CommaList = Field(default_factory=list)
    ops_tokens: SecretList = Field(default_factory=list)
    admin_tokens: SecretList = Field(default_factory=list)
    erp_url: str | None = None
    erp_adapter: Literal["json", "tryton", "netsuite"] = "json"
    erp_user: str | None = None
    erp_password: SecretStr | None = None
    erp_mapping: Path | None = None
    erp_authorization: SecretStr | None = None
    erp_signing_secret: SecretStr | None = None
    erp_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    erp_concurrency: int = Field(default=4, ge=1, le=256)
    erp_max_attempts: int = Field(default=12, ge=1, le=1000)
    erp_retry_base_seconds: float = Field(default=5.0, gt=0)
    erp_retry_max_seconds: float = Field(default=3600.0, gt=0)
    erp_send_sales: bool = False
    # NetSuite's token-based authentication and what an inventory adjustment books against.
    netsuite_account_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    netsuite_consumer_key: str | None = None
    netsuite_consumer_secret: SecretStr | None = None
    netsuite_token_id: str | None = None
    netsuite_token_secret: SecretStr | None = None
    netsuite_adjustment_account: str | None = None
    netsuite_subsidiary: str | None = None
    netsuite_concurrency: int = Field(default=2, ge=1, le=1000)
    return_locations: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_lines_per_event: int = Field(default=10_000, ge=1, le=LINES_LIMIT)
    keep_ignored_bodies: bool = False
    retain_delivered_days: int = Field(default=30, ge=1, le=36_500)
    retain_bodies_days: int = Field(default=90, ge=1, le=36_500)
    purge_interval_minutes: int = Field(default=0, ge=0, le=525_600)
    max_header_bytes: int = Field(default=65_536, ge=1024, le=1024 * 1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    keepalive_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    metrics_token: SecretStr | None = None
    api_docs: bool = True
    console_signing_key: SecretStr | None = None
    console_session_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] | None = None
    # NewStore's APIs, for the `inventory-sync newstore` commands only; the service itself
    # never calls NewStore.
    newstore_url: str | None = None
    newstore_tenant: str | None = None
    newstore_token: SecretStr | None = None
    newstore_client_id: str | None = None
    newstore_client_secret: SecretStr | None = None
    newstore_token_url: str | None = None
    newstore_integration_id: str = Field(
        default="inventory-sync", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$"
    )

    @field_validator("webhook_keys", "ops_tokens", "admin_tokens", "tenants", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("log_level", "erp_adapter", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator(
        "erp_url",
        "erp_authorization",
        "erp_signing_secret",
        "erp_user",
        "erp_password",
        "erp_mapping",
        *NETSUITE_REQUIRED,
        "netsuite_subsidiary",
        "metrics_token",
        "console_signing_key",
        "newstore_url",
        "newstore_tenant",
        "newstore_token",
        "newstore_client_id",
        "newstore_client_secret",
        "newstore_token_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("return_locations", mode="before")
    @classmethod
    def _return_locations(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    'expected JSON, e.g. {"2": "damaged"} (condition code to stock location)'
                ) from None
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise ValueError(
                'expected a JSON object of condition code to stock location, e.g. {"2": "damaged"}'
            )
        return {str(k): v for k, v in value.items()}

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme, _, driver = value.split(":", 1)[0].partition("+")
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("expected sqlite:///path or postgresql://user@host:port/db")
        if scheme != "sqlite" and driver not in ("", "psycopg", "asyncpg"):
            # The service picks its drivers itself (storage/postgres.py): asyncpg for intake
            # and delivery, psycopg 3 for queries and migrations.
            raise ValueError(
                f"the {driver} driver is not supported: use postgresql://user@host:port/db "
                "(the service picks its own drivers)"
            )
        return value

    @field_validator("erp_url", "newstore_url", "newstore_token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("console_signing_key")
    @classmethod
    def _console_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("expected at least 32 characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("erp_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if not secret.startswith("whsec_"):
            raise ValueError("expected a Standard Webhooks secret starting with whsec_")
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if len(key) < 16:
            raise ValueError("expected whsec_ followed by at least 16 bytes in base64")
        return value

    @field_validator("erp_mapping")
    @classmethod
    def _erp_mapping(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such file")
        return value

    @model_validator(mode="after")
    def _tryton_login(self) -> Settings:
        if self.erp_adapter == "tryton" and self.erp_url and not self.erp_user:
            raise ValueError("INVSYNC_ERP_USER: INVSYNC_ERP_ADAPTER=tryton needs a login")
        return self

    @model_validator(mode="after")
    def _netsuite_login(self) -> Settings:
        if self.erp_adapter != "netsuite" or not self.erp_url:
            return self
        for name in NETSUITE_REQUIRED:
            if getattr(self, name) is None:
                raise ValueError(f"INVSYNC_{name.upper()}: INVSYNC_ERP_ADAPTER=netsuite needs it")
        return self

    @model_validator(mode="after")
    def _newstore_client(self) -> Settings:
        if (self.newstore_client_id is None) != (self.newstore_client_secret is None):
            raise ValueError(
                "INVSYNC_NEWSTORE_CLIENT_ID and INVSYNC_NEWSTORE_CLIENT_SECRET go together"
            )
        return self

    @model_validator(mode="after")
    def _retry_bounds(self) -> Settings:
        if self.erp_retry_max_seconds < self.erp_retry_base_seconds:
            raise ValueError(
                "INVSYNC_ERP_RETRY_MAX_SECONDS must not be below INVSYNC_ERP_RETRY_BASE_SECONDS"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return Path(path) if path and path != ":memory:" else None


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one clear line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # a rule across settings names its variables itself
            raise ConfigurationError(message) from None
        raise ConfigurationError(f"INVSYNC_{str(first['loc'][0]).upper()}: {message}") from None
    except ValueError as exc:  # e.g. a .env line pydantic-settings cannot decode
        raise ConfigurationError(f"configuration: {exc}") from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line for each `INVSYNC_` variable that is no setting (in the environment or the
    `.env` file), naming the closest setting: a misspelt one is otherwise silently ignored."""
    known = {f"INVSYNC_{name.upper()}" for name in Settings.model_fields}
    # Read by `serve`'s options, and by the tooling around the service (tests, compose).
    known |= {
        "INVSYNC_HOST",
        "INVSYNC_PORT",
        "INVSYNC_REQUIRE_POSTGRES",
        "INVSYNC_REQUIRE_TRYTON",
        "INVSYNC_REQUIRE_BROWSER",
        "INVSYNC_BIND",
    }
    names = set(os.environ if environ is None else environ)
    env_file = Path(".env")
    if environ is None and env_file.is_file():
        names |= {name for name in dotenv_values(env_file) if name}
    lines = []
    for name in sorted(n for n in names if n.upper().startswith("INVSYNC_")):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{name} is not a setting and is ignored{hint}")
    return lines


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
