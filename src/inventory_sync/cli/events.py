"""Command-line verbs for stored events: `events list`, `events show ID`, `events replay`,
`events dismiss`."""

from __future__ import annotations

import asyncio
import getpass
from collections import Counter
from typing import Annotated, Any, Literal

import typer

from inventory_sync.cli import output
from inventory_sync.cli.common import settings_or_exit, time_option
from inventory_sync.clock import utcnow
from inventory_sync.intake import dismiss as dismissal
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.ops import bulk
from inventory_sync.storage.store import Store, open_database, open_store
from inventory_sync.views import events as events_view
from inventory_sync.views.events import EventFilter, event_ids

events_cli = typer.Typer(help="Stored NewStore events.", no_args_is_help=True)

StatusOption = Annotated[
    Literal["accepted", "ignored", "quarantined", "dismissed"] | None,
    typer.Option(help="Only events of this status.", show_default=False),
]
NameOption = Annotated[str | None, typer.Option(help="Only events of this name.")]
TenantOption = Annotated[str | None, typer.Option(help="Only events of this tenant.")]
LocationOption = Annotated[str | None, typer.Option(help="Only events of this location.")]
SinceOption = Annotated[
    str | None, typer.Option(help="Received at or after (ISO-8601).", show_default=False)
]
UntilOption = Annotated[
    str | None, typer.Option(help="Received before (ISO-8601).", show_default=False)
]
OrderOption = Annotated[
    Literal["desc", "asc"], typer.Option(help="desc: newest first; asc: oldest first.")
]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="How many to show.")]


@events_cli.command("replay")
def replay(
    event_id: Annotated[
        int | None, typer.Argument(min=1, help="The event to replay.", show_default=False)
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every quarantined event matching the filters.")
    ] = False,
    name: NameOption = None,
    tenant: TenantOption = None,
    location_id: LocationOption = None,
    payload_id: Annotated[
        str | None, typer.Option(help="Only events of this NewStore payload id.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    max_: Annotated[
        int | None,
        typer.Option("--max", min=1, help="Replay at most this many.", show_default=False),
    ] = None,
    json_: output.JsonOption = False,
) -> None:
    """Re-process quarantined events with today's code and configuration.

    Idempotent: an event that is no longer quarantined is left as it is. Exits 1 when an
    event is not found, is dismissed or stays quarantined.
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
    outcomes: list[dict[str, Any]] = []

    def report(current: int, outcome: intake.Outcome | None) -> None:
        found = {
            "event_id": current,
            "status": None if outcome is None else outcome.status.value,
            "detail": "not found" if outcome is None else outcome.detail,
        }
        if not json_:
            detail = f" ({found['detail']})" if found["detail"] else ""
            typer.echo(f"event {current}: {found['status'] or 'not found'}{detail}")
        outcomes.append(found)

    async def matching(store: Store) -> int:
        """Batch after batch, each event committed alone, until none is left or --max is met;
        returns how many match but were not reached."""
        after, left, remaining = 0, max_, 0
        while left is None or left > 0:
            batch = bulk.MAX_REPLAY if left is None else min(left, bulk.MAX_REPLAY)
            done = await bulk.replay_matching(store, rules, where, batch, after, report)
            remaining = done.remaining
            if done.last_id is None or not remaining:
                break
            after = done.last_id
            left = None if left is None else left - done.replayed - done.failed
        return remaining

    async def run() -> int:
        store = await open_store(settings.database_url, pool_size=1)
        try:
            if event_id is not None:
                report(event_id, await intake.replay(store, event_id, rules))
                return 0
            return await matching(store)
        finally:
            await store.close()

    remaining = asyncio.run(run())
    totals = Counter(found["status"] or "not_found" for found in outcomes)
    if json_:
        output.emit_json({"replayed": outcomes, "totals": dict(totals), "remaining": remaining})
    elif all_:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) or "nothing to replay"
        typer.echo(f"replayed: {summary}" + (f"; {remaining} not reached" if remaining else ""))
    if set(totals) & {"not_found", Status.QUARANTINED, Status.DISMISSED}:
        raise typer.Exit(1)


@events_cli.command("list")
def list_events(
    status: StatusOption = None,
    name: NameOption = None,
    tenant: TenantOption = None,
    location_id: LocationOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    order: OrderOption = "desc",
    limit: LimitOption = 50,
    json_: output.JsonOption = False,
) -> None:
    """Show stored events, newest first."""
    where = EventFilter(
        status=status,
        name=name,
        tenant=tenant,
        location_id=location_id,
        since=time_option("--since", since),
        until=time_option("--until", until),
    )
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db, db.snapshot() as conn:
        rows = events_view.list_events(conn, where, limit, None, order == "desc")
    columns = ("id", "received_at", "status", "name", "location_id", "payload_id", "error")
    output.listing(columns, rows, json_)


# Fields `events show` leaves out of its first table: they get tables of their own.
_PARTS = ("raw_body", "raw_body_base64", "movements", "erp_message")
# How much of a raw body `events show` prints; --json and `/v1/events/{id}/raw` have it all.
SHOWN_BODY_CHARS = 4000


@events_cli.command("show")
def show(
    event_id: Annotated[int, typer.Argument(min=1, help="The event to show.")],
    json_: output.JsonOption = False,
) -> None:
    """Show one event: its fields, its ledger movements, its ERP message and its raw body, as
    GET /v1/events/ID has them. Exits 1 when there is no such event."""
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db, db.snapshot() as conn:
        event = events_view.event_detail(conn, event_id)
    if event is None:
        typer.echo(f"no event {event_id}", err=True)
        raise typer.Exit(1)
    if json_:
        output.emit_json(event)
        return
    tables = [
        output.fields({k: v for k, v in event.items() if k not in _PARTS}, title="event"),
        output.table(
            ("id", "location_id", "stock_location", "product_id", "quantity", "kind"),
            event["movements"],
            title=f"ledger movements ({event['movements_total']})",
        ),
    ]
    if event["erp_message"] is not None:
        tables.append(output.fields(event["erp_message"], title="ERP message"))
    output.show(*tables)
    body = event["raw_body"] or event["raw_body_base64"]
    if body:
        more = len(body) - SHOWN_BODY_CHARS
        typer.echo("raw body" + (" (base64):" if event["raw_body"] is None else ":"))
        typer.echo(body[:SHOWN_BODY_CHARS])
        if more > 0:
            typer.echo(f"... {more} more characters (--json, or GET /v1/events/{event_id}/raw)")


@events_cli.command("dismiss")
def dismiss(
    event_id: Annotated[
        int | None, typer.Argument(min=1, help="The event to dismiss.", show_default=False)
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why it is set aside, kept with the event.", show_default=False)
    ] = "",
    by: Annotated[str | None, typer.Option(help="Who dismisses (default: the login name).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Dismiss every quarantined event matching the filters.")
    ] = False,
    name: NameOption = None,
    tenant: TenantOption = None,
    location_id: LocationOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    json_: output.JsonOption = False,
) -> None:
    """Set quarantined events aside for good, with a reason: their status becomes
    `dismissed`, they leave the quarantine counts, and replay refuses them; their body (until
    retention), error and who dismissed them, when and why are kept.

    --all with no filter dismisses every quarantined event. Exits 1 when EVENT_ID is not
    found or is not quarantined.
    """
    if (event_id is None) == (not all_):
        raise typer.BadParameter("give either EVENT_ID or --all")
    filters = (name, tenant, location_id, since, until)
    if event_id is not None and any(v is not None for v in filters):
        raise typer.BadParameter("filters only apply with --all")
    if not reason.strip() or len(reason) > dismissal.MAX_REASON:
        raise typer.BadParameter(
            f"give a reason of 1 to {dismissal.MAX_REASON} characters", param_hint="--reason"
        )
    where = EventFilter(
        status=Status.QUARANTINED,
        name=name,
        tenant=tenant,
        location_id=location_id,
        since=time_option("--since", since),
        until=time_option("--until", until),
    )
    who = f"{by or _login()} (command line)"
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db:
        ids = iter([event_id]) if event_id is not None else event_ids(db, where)
        count = dismissal.dismiss(db, ids, reason, who, utcnow())
        found = None
        if event_id is not None:
            with db.snapshot() as conn:
                found = events_view.get_event(conn, event_id, 0)
    if json_:
        output.emit_json({"dismissed": count})
    else:
        typer.echo(f"dismissed: {count}")
    if event_id is not None and (found is None or found.status != Status.DISMISSED):
        status = "not found" if found is None else f"{found.status}, not quarantined"
        typer.echo(f"event {event_id}: {status}", err=True)
        raise typer.Exit(1)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "unknown"
