"""Command-line verbs of the ERP sync: `worker`, `sync list|retry|status`, `erp-standin`."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from inventory_sync.cli import output
from inventory_sync.cli.common import settings_or_exit, time_option
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import client, outbox, standin, supervisor
from inventory_sync.erp_sync import worker as erp_worker
from inventory_sync.observability import logs
from inventory_sync.ops import bulk
from inventory_sync.storage.store import open_database
from inventory_sync.views import outbox as outbox_view

sync_cli = typer.Typer(help="The outbox of ERP documents.", no_args_is_help=True)


def worker() -> None:
    """Run the ERP sync worker until SIGTERM or SIGINT.

    On a signal it stops claiming, lets in-flight deliveries finish (bounded by the request
    timeout) and releases whatever is still unfinished.
    """
    settings = settings_or_exit()
    logs.configure(settings)
    if settings.erp_signing_secret is not None:
        try:
            client.signer(settings.erp_signing_secret.get_secret_value())
        except ValueError as error:
            typer.echo(f"configuration error: {error}", err=True)
            raise typer.Exit(2) from None
    if settings.erp_url is None:
        typer.echo("INVSYNC_ERP_URL is not set: messages wait as pending", err=True)
    supervisor.yield_to_the_api()
    erp_worker.run_until_signalled(settings)


@sync_cli.command("list")
def list_messages(
    status: Annotated[
        Literal["pending", "delivered", "dead"] | None,
        typer.Option(help="Only messages of this status.", show_default=False),
    ] = None,
    order: Annotated[
        Literal["desc", "asc"],
        typer.Option(help="desc: newest event first; asc: oldest first."),
    ] = "desc",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many to show.")] = 50,
    json_: output.JsonOption = False,
) -> None:
    """Show outbox messages, newest event first."""
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db:
        with db.snapshot() as conn:
            rows = outbox_view.list_messages(
                conn, outbox_view.MessageFilter(status=status), limit, None, order == "desc"
            )
    columns = ("id", "event_id", "type", "status", "attempts", "next_attempt_at", "last_error")
    output.listing(columns, rows, json_)


@sync_cli.command("retry")
def retry(
    message_id: Annotated[str | None, typer.Argument(show_default=False)] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Retry every dead message matching the filters.")
    ] = False,
    type_: Annotated[
        str | None, typer.Option("--type", help="Only messages of this type.", show_default=False)
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only messages of this tenant.")] = None,
    location_id: Annotated[
        str | None, typer.Option(help="Only messages of this location.", show_default=False)
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Died at or after (ISO-8601).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Died before (ISO-8601).", show_default=False)
    ] = None,
    error: Annotated[
        str | None, typer.Option(help="Whose last error contains this text.", show_default=False)
    ] = None,
    max_: Annotated[
        int, typer.Option("--max", min=1, max=bulk.MAX_RETRY, help="Retry at most this many.")
    ] = bulk.MAX_RETRY,
    json_: output.JsonOption = False,
) -> None:
    """Deliver MESSAGE_ID again now, or the dead messages matching the filters with
    --all-dead."""
    filters = (type_, tenant, location_id, since, until, error)
    if (message_id is None) == (not all_dead):
        raise typer.BadParameter("give either a MESSAGE_ID or --all-dead")
    if message_id is not None and any(v is not None for v in filters):
        raise typer.BadParameter("filters only apply with --all-dead")
    where = outbox_view.MessageFilter(
        type=type_,
        tenant=tenant,
        location_id=location_id,
        since=time_option("--since", since),
        until=time_option("--until", until),
        error=error,
    )
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db:
        if all_dead:
            done = bulk.retry_matching(db, where, max_, utcnow())
            if json_:
                counts = {"retried": done.retried, "failed": done.failed}
                output.emit_json({**counts, "remaining": done.remaining})
            else:
                typer.echo(
                    f"{done.retried} dead message(s) back to pending, {done.failed} failed, "
                    f"{done.remaining} remaining"
                )
            return
        assert message_id is not None
        with db.transaction() as conn:
            before = outbox.retry(conn, message_id, utcnow())
    if before is None:
        typer.echo(f"no sync message {message_id}", err=True)
        raise typer.Exit(1)
    if before == outbox.DELIVERED:
        typer.echo(f"{message_id} is already delivered", err=True)
        raise typer.Exit(1)
    if json_:
        output.emit_json({"id": message_id, "was": before, "status": outbox.PENDING})
    else:
        typer.echo(f"{message_id}: {before} -> pending, due now")


@sync_cli.command("status")
def status(json_: output.JsonOption = False) -> None:
    """Pending, delivered and dead counts, and the age of the oldest pending message."""
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db:
        with db.snapshot() as conn:
            backlog = outbox_view.backlog(conn)
    if json_:
        output.emit_json(backlog)
        return
    age = backlog["oldest_pending_age_seconds"]
    shown = {**backlog, "oldest_pending_age_seconds": None if age is None else f"{age:.0f}s"}
    output.show(output.fields(shown, title="ERP sync"))


def erp_standin(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 9000,
    secret: Annotated[
        str | None,
        typer.Option(help="Standard Webhooks secret (whsec_...) to verify signatures."),
    ] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests to fail.")
    ] = 0.0,
    fail_status: Annotated[int, typer.Option(min=100, max=599, help="Status of a failure.")] = 503,
    fail_first: Annotated[int, typer.Option(min=0, help="Fail the first N requests.")] = 0,
) -> None:
    """A local ERP for demos: prints each document it receives, one per line."""
    if secret is not None and not secret.startswith("whsec_"):
        raise typer.BadParameter("expected a secret starting with whsec_", param_hint="--secret")
    behaviour = standin.Behaviour(
        secret=secret, fail_rate=fail_rate, fail_status=fail_status, fail_first=fail_first
    )
    server = standin.serve(host, port, behaviour)
    signed = "verifying signatures" if secret else "not verifying signatures"
    typer.echo(f"ERP stand-in on http://{host}:{server.server_port}/ ({signed})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
