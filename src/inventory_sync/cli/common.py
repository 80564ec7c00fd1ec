"""What every `inventory-sync` command shares."""

from __future__ import annotations

import typer

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
