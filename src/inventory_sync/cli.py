"""The `inventory-sync` command line."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from inventory_sync import logs, migrate
from inventory_sync.commandline import settings_or_exit
from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.erp_sync import commands as erp_commands
from inventory_sync.erp_sync import process as erp_process
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


_APP = "inventory_sync.cli:app_factory"


def app_factory() -> FastAPI:
    from inventory_sync.app import create_app

    settings = settings_or_exit()
    logs.configure(settings)
    app = create_app(settings)
    # What is loaded by now lives as long as the process: keep it out of the cyclic collector,
    # whose full passes over it stalled every request for about 100 ms.
    gc.collect()
    gc.freeze()
    return app


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not start the ERP sync worker process.")
    ] = False,
) -> None:
    """Run the API and, unless --no-worker, the ERP sync worker as a child process that is
    restarted if it dies and stopped with the API."""
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
    typer.echo(
        f"inventory-sync on http://{host}:{port} (POST /webhooks/newstore, docs at /docs)",
        err=True,
    )
    run_worker = not no_worker and settings.erp_url is not None
    if not no_worker and not run_worker:
        typer.echo(
            "INVSYNC_ERP_URL is not set: no ERP sync worker; messages wait as pending", err=True
        )
    if run_worker:
        # uvicorn re-raises the SIGTERM it shut down on; with the default action the process
        # would end on the spot and leave stopping the worker to the worker's own watchdog.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 30,
    }
    # The worker gets its request timeout to finish what is in flight, then some room.
    grace = settings.erp_timeout_seconds + 10
    with erp_process.running(grace) if run_worker else contextlib.nullcontext() as worker:
        if workers > 1:
            # uvicorn's process manager: the worker is stopped once the API processes are.
            uvicorn.run(_APP, **options)
            return
        server = _Server(uvicorn.Config(_APP, **options), worker.begin_stop if worker else None)
        server.run()
        if not server.started:
            sys.exit(3)


class _Server(uvicorn.Server):
    """Tells the worker process to stop as soon as the API begins to shut down, so that both
    drain at the same time within the platform's stop timeout."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            self._on_exit()
        super().handle_exit(sig, frame)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


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
