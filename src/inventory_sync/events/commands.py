"""Command-line verbs for stored events: `events replay EVENT_ID` and `events replay --all`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import select

from inventory_sync.commandline import settings_or_exit
from inventory_sync.db import Database
from inventory_sync.events import router as events_router
from inventory_sync.filters import narrow
from inventory_sync.webhooks import service as intake
from inventory_sync.webhooks.models import inbound_event
from inventory_sync.webhooks.schemas import parse_timestamp

events_cli = typer.Typer(help="Stored NewStore events.", no_args_is_help=True)

# Ids are read in pages so a large backlog never sits in memory; each replay commits alone.
BATCH = 500


def _time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def quarantined_ids(
    db: Database,
    *,
    name: str | None = None,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[int]:
    """Ids of quarantined events matching the filter, in arrival order.

    `since`/`until` apply to `received_at` (`until` exclusive), as in `GET /v1/events`.
    """
    e = inbound_event
    after = 0
    while True:
        query = (
            select(e.c.id)
            .where(e.c.status == intake.QUARANTINED, e.c.id > after)
            .order_by(e.c.id)
            .limit(BATCH)
        )
        query = narrow(
            query,
            [(e.c.name, name), (e.c.tenant, tenant)],
            period=e.c.received_at,
            since=since,
            until=until,
        )
        with db.snapshot() as conn:
            ids = list(conn.execute(query).scalars())
        yield from ids
        if len(ids) < BATCH:
            return
        after = ids[-1]


@events_cli.command("replay")
def replay(
    event_id: Annotated[
        int | None, typer.Argument(min=1, help="The event to replay.", show_default=False)
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every quarantined event matching the filters.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Only events of this name.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only events of this tenant.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Received at or after (ISO-8601).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Received before (ISO-8601).", show_default=False)
    ] = None,
) -> None:
    """Re-process quarantined events with today's code and configuration.

    Idempotent: an event that is no longer quarantined is left as it is. Exits 1 when an
    event is not found or stays quarantined.
    """
    if (event_id is None) == (not all_):
        raise typer.BadParameter("give either EVENT_ID or --all")
    if event_id is not None and any(v is not None for v in (name, tenant, since, until)):
        raise typer.BadParameter("filters only apply with --all")
    start, end = _time("--since", since), _time("--until", until)
    settings = settings_or_exit()
    rules = intake.Rules(frozenset(settings.tenants), dict(settings.return_locations))
    with Database(settings.database_url, pool_size=1) as db:
        if event_id is not None:
            ids: Iterator[int] = iter([event_id])
        else:
            ids = quarantined_ids(db, name=name, tenant=tenant, since=start, until=end)
        totals: dict[str, int] = {}
        failed = False
        for current in ids:
            outcome = events_router.replay(db, current, rules)
            if outcome is None:
                typer.echo(f"event {current}: not found", err=True)
                failed = True
                continue
            totals[outcome.status] = totals.get(outcome.status, 0) + 1
            failed = failed or outcome.status == intake.QUARANTINED
            detail = f" ({outcome.detail})" if outcome.detail else ""
            typer.echo(f"event {current}: {outcome.status}{detail}")
    if all_:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) or "nothing to replay"
        typer.echo(f"replayed: {summary}")
    if failed:
        raise typer.Exit(1)
