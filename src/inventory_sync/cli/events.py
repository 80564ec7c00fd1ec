"""Command-line verbs for stored events: `events replay EVENT_ID` and `events replay --all`."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import typer

from inventory_sync.cli.common import settings_or_exit, time_option
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.ops import bulk
from inventory_sync.storage.store import Store, open_store
from inventory_sync.views.events import EventFilter

events_cli = typer.Typer(help="Stored NewStore events.", no_args_is_help=True)


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
    location_id: Annotated[
        str | None, typer.Option(help="Only events of this location.", show_default=False)
    ] = None,
    payload_id: Annotated[
        str | None, typer.Option(help="Only events of this NewStore payload id.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Received at or after (ISO-8601).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Received before (ISO-8601).", show_default=False)
    ] = None,
    max_: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Replay at most this many.", show_default=False),
    ] = None,
) -> None:
    """Re-process quarantined events with today's code and configuration.

    Idempotent: an event that is no longer quarantined is left as it is. Exits 1 when an
    event is not found or stays quarantined.
    """
    filters = (name, tenant, location_id, payload_id, since, until, max_)
    if (event_id is None) == (not all_):
        raise typer.BadParameter("give either EVENT_ID or --all")
    if event_id is not None and any(v is not None for v in filters):
        raise typer.BadParameter("filters only apply with --all")
    where = EventFilter(
        name=name,
        tenant=tenant,
        location_id=location_id,
        payload_id=payload_id,
        since=time_option("--since", since),
        until=time_option("--until", until),
    )
    settings = settings_or_exit()
    rules = Rules.from_settings(settings)

    def report(current: int, outcome: intake.Outcome) -> None:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        typer.echo(f"event {current}: {outcome.status.value}{detail}")

    async def one(store: Store, current: int) -> bool:
        outcome = await intake.replay(store, current, rules)
        if outcome is None:
            typer.echo(f"event {current}: not found", err=True)
            return False
        report(current, outcome)
        return outcome.status is not Status.QUARANTINED

    async def matching(store: Store) -> bool:
        # Batch after batch, each event committed alone, until none is left or --max is met.
        totals: Counter[str] = Counter()
        after, left, remaining = 0, max_, 0
        while left is None or left > 0:
            batch = bulk.MAX_REPLAY if left is None else min(left, bulk.MAX_REPLAY)
            done = await bulk.replay_matching(store, rules, where, batch, after, report)
            totals.update(done.outcomes)
            remaining = done.remaining
            if done.last_id is None or not remaining:
                break
            after = done.last_id
            left = None if left is None else left - done.replayed - done.failed
        summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) or "nothing to replay"
        typer.echo(f"replayed: {summary}" + (f"; {remaining} not reached" if remaining else ""))
        return not totals[Status.QUARANTINED.value]

    async def run() -> bool:
        store = await open_store(settings.database_url, pool_size=1)
        try:
            return await (matching(store) if event_id is None else one(store, event_id))
        finally:
            await store.close()

    if not asyncio.run(run()):
        raise typer.Exit(1)
