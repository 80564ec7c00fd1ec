"""`inventory-sync newstore`: our Event Stream integration on NewStore's side, without curl.

`register`, `status`, `pause`, `resume`, `replay` (a date window, through a temporary
integration) and `failures` (NewStore's failed publications, matched against the inbox, and
retried one by one). Each prints a table on a terminal and JSON with `--json`. NewStore's
credentials (`INVSYNC_NEWSTORE_*`) and the webhook key go only into requests, never into output.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from inventory_sync import credentials
from inventory_sync.cli.common import settings_or_exit
from inventory_sync.clock import iso, parse_timestamp, utcnow
from inventory_sync.intake.classify import primary_slot
from inventory_sync.newstore_api import failures as failed
from inventory_sync.newstore_api import integrations
from inventory_sync.newstore_api.client import (
    Client,
    Credentials,
    MissingConfiguration,
    NewStoreError,
)
from inventory_sync.newstore_api.integrations import Integration
from inventory_sync.settings import Settings
from inventory_sync.storage.store import open_database
from inventory_sync.views import events as events_view

newstore_cli = typer.Typer(
    help="Our Event Stream integration at NewStore: register, pause, replay, failures.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]


def _configured() -> tuple[Settings, Credentials]:
    settings = settings_or_exit()
    try:
        creds = Credentials.from_settings(settings)
    except MissingConfiguration as error:
        typer.echo(f"configuration error: {error}", err=True)
        raise typer.Exit(2) from None
    if settings.tenants and creds.tenant not in settings.tenants:
        typer.echo(
            f"warning: INVSYNC_TENANTS does not name {creds.tenant} "
            "(INVSYNC_NEWSTORE_TENANT): its events would be quarantined",
            err=True,
        )
    return settings, creds


def _webhook_key(settings: Settings) -> str:
    """The key NewStore is to send: the first of INVSYNC_WEBHOOK_KEYS (the new one, during a
    rotation). A generated key is kept only as a digest, so it cannot be handed on."""
    if not settings.webhook_keys:
        typer.echo(
            "configuration error: set INVSYNC_WEBHOOK_KEYS: NewStore needs the key it is to "
            "send (a generated key is kept only as its digest; put it there)",
            err=True,
        )
        raise typer.Exit(2)
    return settings.webhook_keys[0].get_secret_value()


@contextlib.contextmanager
def _newstore(creds: Credentials) -> Iterator[Client]:
    """A client; NewStore's refusals end the command with their one line and exit 1."""
    with Client(creds) as client:
        try:
            yield client
        except NewStoreError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(1) from None


def _time(option: str, value: str) -> datetime:
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def _emit(as_json: bool, data: dict[str, Any], render: Callable[[Console], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        render(Console())


def _integration_table(integration: Integration, title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in integration.public().items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        table.add_row(name, "-" if value is None else str(value))
    return table


@newstore_cli.command("register")
def register(
    callback_url: Annotated[
        str | None,
        typer.Option(
            help="This service's webhook URL as NewStore reaches it, "
            "e.g. https://sync.example.com/webhooks/newstore. Needed to create; "
            "kept as it is when omitted on an update.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update our integration at NewStore; safe to run again.

    It gets the callback URL, the webhook key as its api_key, and an event filter of exactly
    the events this service handles.
    """
    if callback_url is not None and not callback_url.startswith(("https://", "http://")):
        raise typer.BadParameter("expected an https:// URL", param_hint="--callback-url")
    settings, creds = _configured()
    key = _webhook_key(settings)
    with _newstore(creds) as client:
        try:
            done = integrations.register(
                client, settings.newstore_integration_id, callback_url, key
            )
        except integrations.MissingCallbackUrl as error:
            raise typer.BadParameter(str(error), param_hint="--callback-url") from None

    def render(console: Console) -> None:
        console.print(f"integration {done.integration.id}: {done.action}")
        console.print(_integration_table(done.integration, "NewStore integration"))

    _emit(as_json, {"action": done.action, "integration": done.integration.public()}, render)


@newstore_cli.command("status")
def status(as_json: JsonOption = False) -> None:
    """Our integration as NewStore has it, and the replays under way.

    Running or stopped, its callback, its filter against the events handled, and whether its
    api_key is one this service accepts.
    """
    settings, creds = _configured()
    base = settings.newstore_integration_id
    with _newstore(creds) as client:
        ours = integrations.get(client, base)
        replays = [i for i in integrations.list_all(client) if i.id.startswith(f"{base}-replay-")]
    if ours is None:
        if as_json:
            typer.echo(json.dumps({"integration": None, "replays": []}))
        typer.echo(
            f"no integration {base} at NewStore: run `inventory-sync newstore register`", err=True
        )
        raise typer.Exit(1)
    accepted: bool | None = None
    if ours.api_key is not None and settings.webhook_keys:
        digests = [credentials.digest(k.get_secret_value()) for k in settings.webhook_keys]
        accepted = credentials.matches(ours.api_key, digests)
    data = {
        "integration": ours.public() | {"api_key_accepted": accepted},
        "replays": [r.public() for r in replays],
    }

    def render(console: Console) -> None:
        table = _integration_table(ours, "NewStore integration")
        shown = {True: "yes", False: "NO: every event would be refused (401)", None: "unknown"}
        table.add_row("api_key accepted here", shown[accepted])
        console.print(table)
        for replay in replays:
            console.print(_integration_table(replay, "replay under way"))

    _emit(as_json, data, render)


def _switch(action: str, wanted: str, as_json: bool) -> None:
    settings, creds = _configured()
    integration_id = settings.newstore_integration_id
    with _newstore(creds) as client:
        found = integrations.get(client, integration_id)
        if found is None:
            typer.echo(f"no integration {integration_id} at NewStore", err=True)
            raise typer.Exit(1)
        changed = found.status != wanted
        if changed:
            (integrations.stop if action == "pause" else integrations.start)(client, integration_id)
            found = integrations.get(client, integration_id) or found
    data = {"id": integration_id, "status": found.status, "changed": changed}
    _emit(
        as_json,
        data,
        lambda console: console.print(
            f"integration {integration_id}: {found.status}" + ("" if changed else " (already)")
        ),
    )


@newstore_cli.command("pause")
def pause(as_json: JsonOption = False) -> None:
    """Stop NewStore's deliveries to this service (its `_stop`)."""
    _switch("pause", integrations.STOPPED, as_json)


@newstore_cli.command("resume")
def resume(as_json: JsonOption = False) -> None:
    """Start NewStore's deliveries again (its `_start`), e.g. after NewStore stopped them."""
    _switch("resume", integrations.RUNNING, as_json)


def _stored(
    settings: Settings, tenant: str, keys: set[failed.EventKey]
) -> dict[failed.EventKey, list[failed.Stored]]:
    """The stored events of each key. A sale's are those of its dedupe key's inbox slot (the
    first content stored under it, or another content quarantined under it)."""
    with open_database(settings.database_url, pool_size=1) as db, db.snapshot() as conn:
        rows = events_view.stored_by_payload(conn, tenant, {(n, i) for n, i, _ in keys})
    found: dict[failed.EventKey, list[failed.Stored]] = {}
    for name, payload_id, stamp in keys:
        slot = None if stamp is None else primary_slot((tenant, name, payload_id, stamp))
        found[name, payload_id, stamp] = [
            failed.Stored(chunk, total, status)
            for chunk, total, status, stored_slot in rows.get((name, payload_id), [])
            if slot is None or stored_slot == slot or stored_slot.startswith(slot + ":")
        ]
    return found


def _failures(
    settings: Settings, client: Client, integration_id: str, since: datetime, until: datetime | None
) -> list[failed.Failure]:
    attempts = failed.failed_attempts(client, integration_id, since, until)
    keys = {a.key for a in attempts if not failed.unknowable(a.key)}
    stored = _stored(settings, client.credentials.tenant, keys) if keys else {}
    return failed.match(attempts, stored)


@newstore_cli.command("replay")
def replay(
    since: Annotated[str, typer.Option(help="Start of the window (ISO-8601, UTC unless given).")],
    until: Annotated[str, typer.Option(help="End of the window (ISO-8601): NewStore's ends_at.")],
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where NewStore sends the replay; default: our integration's URL."),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(min=0.01, help="How often to ask NewStore whether it finished.")
    ] = 15.0,
    wait_minutes: Annotated[
        float, typer.Option(min=0.0, help="How long to wait for the replay to finish.")
    ] = 240.0,
    as_json: JsonOption = False,
) -> None:
    """Have NewStore send again every handled event created between SINCE and UNTIL.

    A temporary integration of that window is registered (NewStore stops it after the window's
    last event), waited for, and removed once every event it failed to deliver has reached us
    since. Refused for a window that starts before the first event the inbox holds, or before
    the bodies kept (INVSYNC_RETAIN_BODIES_DAYS): older events could not be recognised as
    duplicates. Run it again to keep waiting for a replay
    under way.
    """
    start, end = _time("--since", since), _time("--until", until)
    settings, creds = _configured()
    key = _webhook_key(settings)
    with open_database(settings.database_url, pool_size=1) as db, db.snapshot() as conn:
        covered_from = events_view.first_received_at(conn, creds.tenant)
    bodies_from = utcnow() - timedelta(days=settings.retain_bodies_days)
    refusal = integrations.coverage_refusal(start, end, covered_from, bodies_from)
    if refusal is not None:
        typer.echo(f"replay refused: {refusal}", err=True)
        raise typer.Exit(2)
    base = settings.newstore_integration_id
    replay_id = integrations.replay_id(base, start, end)
    with _newstore(creds) as client:
        url = callback_url
        if url is None:
            ours = integrations.get(client, base)
            url = ours.callback_url if ours else None
        if url is None:
            typer.echo(
                f"no integration {base} to copy a callback URL from: give --callback-url",
                err=True,
            )
            raise typer.Exit(2)
        created, _ = integrations.start_replay(client, replay_id, url, key, start, end)
        console = Console(stderr=True)
        waiting = (
            console.status(f"NewStore is replaying into {replay_id}...")
            if console.is_terminal and not as_json
            else contextlib.nullcontext()
        )
        try:
            with waiting:
                finished = integrations.wait_until_stopped(
                    client,
                    replay_id,
                    poll_seconds=poll_seconds,
                    timeout_seconds=wait_minutes * 60,
                )
        except KeyboardInterrupt:
            typer.echo(
                f"stopped waiting; {replay_id} keeps running at NewStore: run the same command "
                "again to wait for it and remove it",
                err=True,
            )
            raise typer.Exit(130) from None
        left = []
        if finished is not None:
            left = [
                f
                for f in _failures(settings, client, replay_id, start, None)
                if f.verdict in failed.TO_RETRY
            ]
            if not left:
                integrations.delete(client, replay_id)
    removed = finished is not None and not left
    data = {
        "integration_id": replay_id,
        "since": iso(start),
        "until": iso(end),
        "covered_from": iso(covered_from),
        "created": created,
        "finished": finished is not None,
        "removed": removed,
        "undelivered": [f.json() for f in left],
    }

    def render(console: Console) -> None:
        if finished is None:
            console.print(
                f"{replay_id} still running after {wait_minutes:g} minutes: run the same "
                "command again to keep waiting"
            )
        elif left:
            console.print(
                f"{replay_id} finished, but {len(left)} event(s) never reached us; it is kept "
                f"(removing it would remove NewStore's record of them): run `inventory-sync "
                f"newstore failures --integration {replay_id} --since {iso(start)} --retry`"
            )
            console.print(_failures_table(left, {}))
        else:
            console.print(f"{replay_id} finished and removed: window {iso(start)} to {iso(end)}")

    _emit(as_json, data, render)
    if not removed:
        raise typer.Exit(1)


def _failures_table(found: list[failed.Failure], retried: dict[failed.EventKey, str]) -> Table:
    table = Table(title="failed publications")
    for column in ("event", "entity id", "attempts", "last attempt", "retries left", "here"):
        table.add_column(column, no_wrap=column in ("entity id", "here"))
    if retried:
        table.add_column("retry")
    for f in found:
        cells = [
            f.event_name,
            f.entity_id if f.logical_timestamp is None else f"{f.entity_id} @{f.logical_timestamp}",
            str(f.attempts),
            f.last_attempted_at or "-",
            "-" if f.retries_remaining is None else str(f.retries_remaining),
            f.verdict,
        ]
        retry = retried.get(f.key, "-")
        table.add_row(*cells, *([retry] if retried else []))
    return table


@newstore_cli.command("failures")
def failures(
    since: Annotated[str, typer.Option(help="Attempts made at or after (ISO-8601).")],
    until: Annotated[
        str | None, typer.Option(help="Attempts made before (ISO-8601).", show_default=False)
    ] = None,
    integration: Annotated[
        str | None,
        typer.Option(help="Another integration's attempts, e.g. a replay's.", show_default=False),
    ] = None,
    retry: Annotated[
        bool, typer.Option("--retry", help="Ask NewStore to publish each missing event again.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """NewStore's failed publications to us, each checked against the inbox.

    `missing`: never reached us; `partial`: some chunks did not; `quarantined`: reached us
    (replay it with `inventory-sync events replay`); `received`: a later attempt succeeded;
    `unknown`: a sale whose attempt does not say its logical timestamp, so which of the sales
    of its payload id it is cannot be told (retried too: a stored one is answered duplicate).

    Exits 1 while any event is missing or partial and was not retried with success.
    """
    start = _time("--since", since)
    end = _time("--until", until) if until is not None else None
    settings, creds = _configured()
    integration_id = integration or settings.newstore_integration_id
    retried: dict[failed.EventKey, str] = {}
    with _newstore(creds) as client:
        found = _failures(settings, client, integration_id, start, end)
        for f in found if retry else []:
            if f.verdict not in failed.TO_RETRY:
                continue
            if f.publication_id is None:
                retried[f.key] = "no publication id from NewStore"
                continue
            try:
                failed.retry(client, integration_id, f.publication_id)
                retried[f.key] = "requested"
            except NewStoreError as error:
                retried[f.key] = f"refused: {error}"
    data = {
        "integration_id": integration_id,
        "since": iso(start),
        "until": iso(end),
        "failures": [f.json() | {"retry": retried.get(f.key)} for f in found],
    }

    def render(console: Console) -> None:
        if not found:
            console.print(f"no failed publications to {integration_id} since {iso(start)}")
            return
        console.print(_failures_table(found, retried))

    _emit(as_json, data, render)
    unresolved = [
        f for f in found if f.verdict in failed.TO_RETRY and retried.get(f.key) != "requested"
    ]
    if unresolved:
        raise typer.Exit(1)
