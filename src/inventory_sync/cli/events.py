"""Command-line verbs for stored events: `events replay EVENT_ID` and `events replay --all`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import typer

from inventory_sync.cli.common import settings_or_exit
from inventory_sync.clock import parse_timestamp
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.storage.store import open_store
from inventory_sync.views.events import EventFilter, event_ids

events_cli = typer.Typer(help="Stored NewStore events.", no_args_is_help=True)


def _time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


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
    rules = Rules.from_settings(settings)
    where = EventFilter(status=Status.QUARANTINED, name=name, tenant=tenant, since=start, until=end)

    async def run() -> tuple[dict[str, int], bool]:
        store = await open_store(settings.database_url, pool_size=1)
        totals: dict[str, int] = {}
        failed = False
        try:
            ids: Iterator[int] = (
                iter([event_id]) if event_id is not None else event_ids(store.database, where)
            )
            # Each replay commits alone; ids are read in pages as they go.
            for current in ids:
                outcome = await intake.replay(store, current, rules)
                if outcome is None:
                    typer.echo(f"event {current}: not found", err=True)
                    failed = True
                    continue
                totals[outcome.status] = totals.get(outcome.status, 0) + 1
                failed = failed or outcome.status is Status.QUARANTINED
                detail = f" ({outcome.detail})" if outcome.detail else ""
                typer.echo(f"event {current}: {outcome.status.value}{detail}")
        finally:
            await store.close()
        return totals, failed

    totals, failed = asyncio.run(run())
    if all_:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) or "nothing to replay"
        typer.echo(f"replayed: {summary}")
    if failed:
        raise typer.Exit(1)
