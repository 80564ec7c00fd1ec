"""The `inventory-sync` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from inventory_sync.cli import events, newstore, output, reconciliation, retention, sync
from inventory_sync.cli.common import settings_or_exit
from inventory_sync.erp_sync import supervisor
from inventory_sync.errors import DatabaseRefusesUs, DatabaseUnavailable, SchemaBehind
from inventory_sync.observability import logs
from inventory_sync.settings import Settings
from inventory_sync.storage import migrate
from inventory_sync.storage.store import open_database, open_store

cli = typer.Typer(
    help="newstore-inventory-sync: NewStore inventory events to ledger and ERP.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.command("worker")(sync.worker)
cli.command("erp-standin")(sync.erp_standin)
cli.add_typer(sync.sync_cli, name="sync")
cli.add_typer(events.events_cli, name="events")
cli.add_typer(newstore.newstore_cli, name="newstore")
cli.command("status")(reconciliation.status)
cli.command("purge")(retention.purge)
cli.command("erp-reconcile")(reconciliation.erp_reconcile)

_APP = "inventory_sync.api.app:app_factory"
# prometheus_client's variable (observability.metrics.MULTIPROCESS_DIR), named here so that
# setting it does not load prometheus_client first.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# How long `serve` lets requests in flight finish once told to stop.
SERVE_GRACEFUL_SECONDS = 30
log = logging.getLogger("inventory_sync.cli")


def _prepare(settings: Settings) -> None:
    """The embedded schema and any generated credential, created once, before uvicorn starts
    its processes, so that they never race to create them."""
    # Imported here: the other commands start without loading the web framework.
    from inventory_sync.api.app import prepare

    async def run() -> None:
        store = await open_store(settings.database_url, pool_size=1)
        try:
            await prepare(settings, store)
        finally:
            await store.close()

    asyncio.run(run())


def _prepare_once_reachable(settings: Settings) -> None:
    """`_prepare`, waiting for a database that is only unreachable (it may be starting too);
    a database that refuses the configured connection stops `serve` at once."""
    delay = 1.0
    while True:
        try:
            _prepare(settings)
            return
        except DatabaseRefusesUs as error:
            typer.echo(f"the database refuses the connection: {error}", err=True)
            typer.echo("check INVSYNC_DATABASE_URL (user, password, database name)", err=True)
            raise typer.Exit(2) from None
        except DatabaseUnavailable as error:
            log.warning(
                "serve.database_unavailable",
                extra={"error": str(error)[:300], "retry_in_seconds": delay},
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@cli.command()
def serve(
    host: Annotated[
        str, typer.Option(envvar="INVSYNC_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="INVSYNC_PORT", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not start the ERP sync worker process.")
    ] = False,
) -> None:
    """Run the API and, unless --no-worker, the ERP sync worker as a child process that is
    restarted if it dies and stopped with the API."""
    settings = settings_or_exit()
    logs.configure(settings)
    with _shared_metrics() if workers > 1 else contextlib.nullcontext():
        _serve(settings, host, port, workers, no_worker)


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """prometheus_client's multiprocess mode for the API processes, in a fresh directory of
    this run, so that any process answers a scrape with every process's counters. Set before
    prometheus_client is first loaded, here and (inherited) in each process uvicorn starts."""
    if MULTIPROCESS_DIR in os.environ:  # the operator's own, wiped by the operator
        yield
        return
    directory = tempfile.mkdtemp(prefix="invsync-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _serve(settings: Settings, host: str, port: int, workers: int, no_worker: bool) -> None:
    # Imported here, like _prepare's: the other commands start without the web framework.
    from inventory_sync.api import server as http

    try:
        # Bound now, listening only once serving: a port in use is said before anything else,
        # and until then connections are refused rather than left waiting.
        sock = http.bind(host, port)
    except OSError as error:
        typer.echo(f"cannot listen on {host}:{port}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from None
    _prepare_once_reachable(settings)
    typer.echo(
        f"inventory-sync on http://{host}:{port} (POST /webhooks/newstore, docs at /docs)",
        err=True,
    )
    # Without an ERP the worker has nothing to deliver, but it runs a scheduled purge.
    run_worker = not no_worker and (
        settings.erp_url is not None or settings.purge_interval_minutes > 0
    )
    if not no_worker and not run_worker:
        typer.echo(
            "INVSYNC_ERP_URL is not set: no ERP sync worker; messages wait as pending", err=True
        )
    if run_worker:
        # uvicorn re-raises the SIGTERM it shut down on; with the default action the process
        # would end on the spot and leave stopping the worker to the worker's own watchdog.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    config = http.Config(
        _APP,
        http.open_files_for(http.Limits.from_settings(settings)),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        timeout_keep_alive=settings.keepalive_seconds,
        timeout_graceful_shutdown=SERVE_GRACEFUL_SECONDS,
    )
    # The worker gets its request timeout to finish what is in flight, then some room.
    grace = settings.erp_timeout_seconds + 10
    with supervisor.running(grace) if run_worker else contextlib.nullcontext() as worker:
        if workers > 1:
            # uvicorn's process manager: the worker is stopped once the API processes are.
            Multiprocess(config, sockets=[sock]).run()
            return
        server = _Server(config, worker.begin_stop if worker else None)
        server.run(sockets=[sock])
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
    with open_database(settings.database_url, pool_size=1) as db:
        migrate.upgrade(db, revision)
        with db.snapshot() as conn:
            typer.echo(f"schema at {migrate.current(conn)}")


@db_cli.command("current")
def db_current(json_: output.JsonOption = False) -> None:
    """Show the schema revision and whether it is at head (exit 1 when behind)."""
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db, db.snapshot() as conn:
        found = migrate.current(conn)
    head = migrate.head()
    if json_:
        output.emit_json({"current": found, "head": head, "at_head": found == head})
    else:
        typer.echo(f"current: {found or 'none'}\nhead:    {head}")
    if found != head:
        raise typer.Exit(1)


def main() -> None:
    """The entry point: database problems are one line and an exit status, never a traceback
    (2: the database refuses the configured connection, 3: unreachable or busy, 4: its schema
    is behind this version)."""
    try:
        cli()
    except SchemaBehind as error:
        typer.echo(str(error), err=True)
        sys.exit(4)
    except DatabaseRefusesUs as error:
        typer.echo(f"the database refuses the connection: {error}", err=True)
        sys.exit(2)
    except DatabaseUnavailable as error:
        typer.echo(f"database unavailable: {error}", err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
