"""What every `inventory-sync` command shares."""

from __future__ import annotations

from datetime import datetime

import typer

from inventory_sync.clock import parse_timestamp
from inventory_sync.settings import (
    ConfigurationError,
    Settings,
    load_settings,
    unknown_variables,
)


def settings_or_exit() -> Settings:
    """The configuration, or exit 2 with the one-line reason; a warning for each `INVSYNC_`
    variable that is no setting."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        typer.echo(f"configuration error: {error}", err=True)
        raise typer.Exit(2) from None
    for line in unknown_variables():
        typer.echo(f"warning: {line}", err=True)
    return settings


def time_option(option: str, value: str | None) -> datetime | None:
    """An ISO-8601 option's value, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None
