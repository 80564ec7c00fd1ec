"""What every `inventory-sync` command shares."""

from __future__ import annotations

import typer

from inventory_sync.settings import ConfigurationError, Settings, load_settings


def settings_or_exit() -> Settings:
    """The configuration, or exit 2 with the one-line reason."""
    try:
        return load_settings()
    except ConfigurationError as error:
        typer.echo(f"configuration error: {error}", err=True)
        raise typer.Exit(2) from None
