"""The `inventory-sync` command line."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from inventory_sync import logs, migrate
from inventory_sync.commandline import settings_or_exit
from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.erp_sync import commands as erp_commands
from inventory_sync.events import commands as event_commands
from inventory_sync.reconciliation import commands as reconciliation_commands

cli = typer.Typer(
    help="newstore-inventory-sync: NewStore inventory events to ledger and ERP.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.command("worker")(erp_commands.worker)
cli.command("erp-standin")(erp_commands.erp_standin)
cli.add_typer(erp_commands.sync_cli, name="sync")
cli.add_typer(event_commands.events_cli, name="events")
cli.command("status")(reconciliation_commands.status)

# Tells the app factory, in each uvicorn process, whether to run the in-process worker.
_IN_PROCESS_WORKER = "INVSYNC_SERVE_IN_PROCESS_WORKER"


def app_factory() -> FastAPI:
    from inventory_sync.app import create_app

    settings = settings_or_exit()
    logs.configure(settings)
    return create_app(settings, run_worker=os.environ.get(_IN_PROCESS_WORKER) == "1")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run the ERP sync worker in the API process.")
    ] = False,
) -> None:
    """Run the API (and, unless --no-worker, the ERP sync worker)."""
    from inventory_sync.app import prepare

    settings = settings_or_exit()
    logs.configure(settings)
    with Database(settings.database_url, pool_size=1) as db:
        try:
            # Once, before uvicorn starts its processes: the embedded schema and any generated
            # credential are created here, so processes never race to create them.
            prepare(settings, db)
        except DatabaseUnavailable as error:
            typer.echo(
                f"warning: database unavailable at start ({error}); serving 503 until it is back",
                err=True,
            )
    os.environ[_IN_PROCESS_WORKER] = "0" if no_worker else "1"
    typer.echo(
        f"inventory-sync on http://{host}:{port} (POST /webhooks/newstore, docs at /docs)",
        err=True,
    )
    uvicorn.run(
        "inventory_sync.cli:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = settings_or_exit()
    with Database(settings.database_url, pool_size=1) as db:
        migrate.upgrade(db, revision)
        with db.snapshot() as conn:
            typer.echo(f"schema at {migrate.current(conn)}")


@db_cli.command("current")
def db_current() -> None:
    """Show the schema revision and whether it is at head (exit 1 when behind)."""
    settings = settings_or_exit()
    with Database(settings.database_url, pool_size=1) as db:
        with db.snapshot() as conn:
            found = migrate.current(conn)
    head = migrate.head()
    typer.echo(f"current: {found or 'none'}\nhead:    {head}")
    if found != head:
        raise typer.Exit(1)


def main() -> None:
    try:
        cli()
    except DatabaseUnavailable as error:
        typer.echo(f"database unavailable: {error}", err=True)
        sys.exit(3)
