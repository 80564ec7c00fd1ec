"""`inventory-sync import FILE... | -`: NewStore's export files through the webhook's intake."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from inventory_sync.cli.common import settings_or_exit
from inventory_sync.intake import exports
from inventory_sync.intake.classify import Rules, Status
from inventory_sync.intake.service import Outcome
from inventory_sync.settings import Settings
from inventory_sync.storage.store import open_store

# Exit statuses besides 0 (every line stored); those for the database are every command's.
UNREADABLE = 1
DATABASE_UNAVAILABLE = 3
SCHEMA_BEHIND = 4
INTERRUPTED = 130
CONCURRENCY = 4


def import_(
    files: Annotated[
        list[str],
        typer.Argument(
            help="NewStore export files: newline-delimited JSON, one event per line, plain or "
            "gzip-compressed. `-` reads standard input.",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final counts as one JSON object.")
    ] = False,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Events written at once, each in its own transaction, as concurrent webhook "
            "deliveries are.",
        ),
    ] = CONCURRENCY,
) -> None:
    """Put every event of NewStore export files through the webhook's intake.

    The same validation, dedupe and statuses as the webhook, each event committed on its own:
    importing a file again answers `duplicate` for what is stored. A line that is no event is
    quarantined with its file and line number. Ctrl-C stops after the events in hand.
    """
    if files.count("-") > 1:
        raise typer.BadParameter("`-` (standard input) can be given once", param_hint="FILE")
    for path in files:
        if path != "-" and not os.path.isfile(path):
            raise typer.BadParameter(f"{path}: no such file", param_hint="FILE")
    settings = settings_or_exit()
    interruption = exports.Interruption()
    started = time.monotonic()
    with _stopping_on_signals(interruption), _progress(files) as watcher:
        tally = asyncio.run(_run(settings, files, concurrency, interruption, watcher))
    seconds = time.monotonic() - started
    if as_json:
        typer.echo(json.dumps(_summary(tally, seconds)))
    else:
        _say(tally, seconds)
    if tally.unavailable:
        raise typer.Exit(DATABASE_UNAVAILABLE)
    if tally.interrupted:
        raise typer.Exit(INTERRUPTED)
    if tally.unreadable:
        raise typer.Exit(UNREADABLE)


async def _run(
    settings: Settings,
    files: list[str],
    concurrency: int,
    interruption: exports.Interruption,
    watcher: exports.Watcher | None,
) -> exports.Tally:
    store = await open_store(settings.database_url, pool_size=concurrency)
    try:
        problem = await store.prepare()
        if problem is not None:
            typer.echo(f"cannot import: {problem}", err=True)
            raise typer.Exit(SCHEMA_BEHIND)
        return await exports.run(
            store,
            files,
            Rules.from_settings(settings),
            settings.max_body_bytes,
            interruption,
            in_flight=concurrency,
            watcher=watcher,
        )
    finally:
        await store.close()


@contextmanager
def _stopping_on_signals(interruption: exports.Interruption) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the import to stop between events; a second one stops it at
    once (each event is one atomic write, so even that leaves nothing half-applied)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.getsignal(number) for number in signals}

    def handle(_signal: int, _frame: object) -> None:
        for each in signals:
            signal.signal(each, signal.default_int_handler)
        interruption.request()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


class _Bar:
    """One progress bar over every file: bytes read of their total size when known (not for
    standard input), events stored a second, and the count of each status so far."""

    def __init__(self, progress: Progress, total: int | None) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task("", total=total, counts="")
        self._finished_bytes = 0
        self._current: exports.Export | None = None
        self._counts: Counter[Status] = Counter()
        self._started = time.monotonic()

    def started(self, export: exports.Export) -> None:
        if self._current is not None:
            self._finished_bytes += self._current.size or 0
        self._current = export
        self._progress.update(self._task, description=os.path.basename(export.name))

    def stored(self, export: exports.Export, outcome: Outcome) -> None:
        self._counts[outcome.status] += 1
        rate = self._counts.total() / max(time.monotonic() - self._started, 1e-3)
        counts = " ".join(f"{status.value} {n:,}" for status, n in self._counts.items())
        self._progress.update(
            self._task,
            completed=self._finished_bytes + (export.position or 0),
            counts=f"{rate:,.0f}/s {counts}",
        )


@contextmanager
def _progress(files: list[str]) -> Iterator[_Bar | None]:
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    total = None if "-" in files else sum(os.path.getsize(path) for path in files)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        TextColumn("{task.percentage:>3.0f}%" if total else ""),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bar(progress, total)


def _summary(tally: exports.Tally, seconds: float) -> dict[str, Any]:
    return {
        "lines": tally.lines,
        **{status.value: tally.counts[status] for status in exports.ANSWERS},
        "complete": tally.complete,
        "interrupted": tally.interrupted,
        "last": tally.last,
        "unreadable": tally.unreadable,
        "database_unavailable": tally.unavailable,
        "seconds": round(seconds, 3),
        "events_per_second": round(tally.lines / seconds, 1) if seconds > 0 else None,
    }


def _say(tally: exports.Tally, seconds: float) -> None:
    counts = ", ".join(f"{tally.counts[status]:,} {status.value}" for status in exports.ANSWERS)
    typer.echo(f"imported {tally.lines:,} events in {seconds:.1f} s: {counts}")
    if tally.counts[Status.QUARANTINED]:
        typer.echo(
            "quarantined events name their file and line: "
            "GET /v1/events?status=quarantined, then `inventory-sync events replay`"
        )
    for problem in tally.unreadable:
        typer.echo(f"not read to the end: {problem}", err=True)
    if tally.unavailable:
        typer.echo(f"database unavailable: {tally.unavailable}", err=True)
    if tally.interrupted or tally.unavailable:
        after = f"after {tally.last}" if tally.last else "before the first event"
        typer.echo(
            f"stopped {after}; run the same command again to go on "
            "(what is already stored answers duplicate)",
            err=True,
        )
