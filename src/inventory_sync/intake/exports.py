"""Backfill from NewStore's export files: every line an event, through the webhook's own intake.

NewStore can export its event stream as files of newline-delimited JSON, one event per line in
the webhook's schema. `run()` reads such files a line at a time and hands each line to
`service.receive` as the webhook hands it a body: the same validation, dedupe and statuses, one
committed write per event. An import and NewStore's deliveries of the same events therefore
meet on the same dedupe keys, and importing a file again stores nothing new.

Memory stays bounded whatever a file's size: one line is held at a time, and a line longer than
INVSYNC_MAX_BODY_BYTES is never held whole (it is hashed as it streams past and kept as
quarantined without its bytes, as the webhook would refuse such a body).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import select
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.intake import service
from inventory_sync.intake.classify import Rules, Status, sha256
from inventory_sync.intake.recent import RecentBodies
from inventory_sync.newstore import validation
from inventory_sync.storage.store import Store

CONTENT_TYPE = "application/json"
ANSWERS = (Status.ACCEPTED, Status.DUPLICATE, Status.IGNORED, Status.QUARANTINED)
"""What an import counts: the webhook's answers (a dismissed event redelivered is a duplicate)."""
_GZIP_MAGIC = b"\x1f\x8b"
# How much of a line too long to keep is read at a time while it is hashed and skipped.
_SKIP_BYTES = 64 * 1024
# What reading a file can raise besides the operating system's errors (gzip's own included):
# a compressed file cut short, or corrupt.
_UNREADABLE = (OSError, EOFError, zlib.error)


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line over the body limit: its size and the hash of its bytes, never the bytes."""

    size: int
    content_hash: str


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class Export:
    """One input: a file of newline-delimited JSON, plain or gzip-compressed, or a stream."""

    def __init__(self, name: str, raw: BinaryIO, size: int | None = None) -> None:
        self.name = name
        self.size = size
        """Bytes to read (compressed, for a compressed file), when known."""
        self._raw = raw
        self._seekable = raw.seekable()

    @classmethod
    def open(cls, path: str) -> Export:
        """The file at `path`, or standard input for `-`."""
        if path == "-":
            return cls("<stdin>", sys.stdin.buffer)
        raw = open(path, "rb")  # closed by close()
        return cls(path, raw, os.fstat(raw.fileno()).st_size)

    def ready(self) -> bool:
        """Whether a read may go on without waiting: always for a file; for a pipe, when it
        has something to read now."""
        if self._seekable:
            return True
        try:
            readable, _, _ = select.select([self._raw], [], [], 0)
        except (OSError, ValueError):  # no descriptor to ask (an in-memory stream)
            return True
        return bool(readable)

    @property
    def position(self) -> int | None:
        """Bytes read so far from the input itself, when it can say."""
        return self._raw.tell() if self._seekable else None

    def lines(self, limit: int) -> Iterator[tuple[int, bytes | TooLong]]:
        """The non-blank lines with their numbers (from 1), without their line ends."""
        stream: _Lines = self._raw
        peek = getattr(self._raw, "peek", None)
        if peek is not None and peek(2)[:2] == _GZIP_MAGIC:
            stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
        return _lines(stream, limit)

    def close(self) -> None:
        self._raw.close()


def _lines(stream: _Lines, limit: int) -> Iterator[tuple[int, bytes | TooLong]]:
    number = 0
    while True:
        # Room for the limit and a CRLF: a line that fills it without a line end is too long.
        chunk = stream.readline(limit + 2)
        if not chunk:
            return
        number += 1
        if len(chunk) == limit + 2 and not chunk.endswith(b"\n"):
            yield number, _skip_rest(chunk, stream)
            continue
        body = _without_line_end(chunk)
        if len(body) > limit:
            yield number, TooLong(len(body), sha256(body))
        elif body.strip():
            yield number, body


def _skip_rest(start: bytes, stream: _Lines) -> TooLong:
    """Read the rest of a line too long to keep, hashing it as it goes."""
    digest = hashlib.sha256()
    size = 0
    held = start
    while not held.endswith(b"\n"):
        more = stream.readline(_SKIP_BYTES)
        if not more:
            break
        # The last byte is held back: it may be the CR of a CRLF line end.
        digest.update(held[:-1])
        size += len(held) - 1
        held = held[-1:] + more
    tail = _without_line_end(held)
    digest.update(tail)
    return TooLong(size + len(tail), digest.hexdigest())


def _without_line_end(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


class Interruption:
    """A request to stop (Ctrl-C), honoured between events: no further line is read, and the
    events in hand are committed first.

    A request that comes while the import waits for input (a slow pipe) stops the wait at once:
    `request()`, called from the signal handler, then raises `KeyboardInterrupt` into the read,
    where no event is half-way."""

    def __init__(self) -> None:
        self.requested = False
        self.waiting = False

    def request(self) -> None:
        self.requested = True
        if self.waiting:
            raise KeyboardInterrupt


class Watcher(Protocol):
    """Told of each input and each stored line, e.g. to draw a progress bar."""

    def started(self, export: Export) -> None: ...

    def stored(self, export: Export, outcome: service.Outcome) -> None: ...


@dataclass
class Tally:
    """What an import did."""

    counts: Counter[Status] = field(default_factory=Counter)
    lines: int = 0
    """Events stored, blank lines aside."""
    last: str | None = None
    """The line (`FILE line N`) up to which every line read is stored: where to go on from."""
    interrupted: bool = False
    unreadable: list[str] = field(default_factory=list)
    """Inputs that could not be read to their end, each with the reason."""
    unavailable: str | None = None
    """Why the database stopped the import, and at which line."""

    @property
    def complete(self) -> bool:
        return not (self.interrupted or self.unreadable or self.unavailable)


def origin(name: str, number: int) -> str:
    return f"{name} line {number}"


@dataclass
class _Run:
    store: Store
    rules: Rules
    limit: int
    in_flight: int
    interruption: Interruption
    watcher: Watcher | None
    tally: Tally = field(default_factory=Tally)
    recent: RecentBodies = field(default_factory=RecentBodies)


async def run(
    store: Store,
    paths: Iterable[str],
    rules: Rules,
    limit: int,
    interruption: Interruption,
    *,
    in_flight: int = 1,
    watcher: Watcher | None = None,
) -> Tally:
    """Import every line of every file (`-`: standard input), read in order; files are opened
    one at a time.

    Each event is committed on its own, as the webhook commits it; up to `in_flight` events
    are written at once, as concurrent deliveries are (the database's group commit then
    shares the wait for the disk). Stops early, with what was done so far and nothing in
    flight, when interrupted or when the database is unavailable; a file that cannot be read
    to its end is noted and the next one read."""
    state = _Run(store, rules, limit, in_flight, interruption, watcher)
    tally = state.tally
    for path in paths:
        try:
            export = Export.open(path)
        except OSError as error:
            tally.unreadable.append(f"{path}: {error.strerror or error}")
            continue
        try:
            if watcher is not None:
                watcher.started(export)
            await _one(state, export)
        finally:
            export.close()
        if tally.interrupted or tally.unavailable:
            break
    return tally


async def _one(state: _Run, export: Export) -> None:
    lines = export.lines(state.limit)
    flight: dict[asyncio.Task[service.Outcome], int] = {}
    keys: dict[asyncio.Task[service.Outcome], validation.Key] = {}
    failures: list[tuple[int, str]] = []
    interruption = state.interruption
    number = 0
    try:
        while not (failures or interruption.requested):
            if len(flight) >= state.in_flight:
                failures += await _settle(state, export, flight, asyncio.FIRST_COMPLETED)
                continue
            if flight and not export.ready():
                # The read would wait for a slow pipe, and the loop with it: the writes in
                # flight are finished first, so that no event read waits for the next one.
                failures += await _settle(state, export, flight, asyncio.ALL_COMPLETED)
                continue
            interruption.waiting = True
            try:
                number, line = next(lines)
            except (StopIteration, KeyboardInterrupt):
                break
            except _UNREADABLE as error:
                reason = f"{export.name}: {_reason(error)} (after line {number})"
                state.tally.unreadable.append(reason)
                break
            finally:
                interruption.waiting = False
            key = _key(line) if state.in_flight > 1 else None
            for finished in [task for task in keys if task not in flight]:
                del keys[finished]
            if key is not None and key in keys.values():
                # Two lines under one dedupe key: the first in the file must be the one stored
                # first, as the webhook would have them, so the later waits for the earlier.
                failures += await _settle(state, export, flight, asyncio.ALL_COMPLETED)
                keys.clear()
                if failures:
                    break
            work = asyncio.ensure_future(_store(state, line, origin(export.name, number)))
            flight[work] = number
            if key is not None:
                keys[work] = key
    finally:
        if flight:
            failures += await _settle(state, export, flight, asyncio.ALL_COMPLETED)
    if failures:
        # Lines after the first that failed may be stored too: going on from it is safe.
        first, why = min(failures)
        state.tally.unavailable = f"{why} (at {origin(export.name, first)}, not stored)"
        number = first - 1
    if number:
        state.tally.last = origin(export.name, number)
    state.tally.interrupted = interruption.requested


async def _settle(
    state: _Run, export: Export, flight: dict[asyncio.Task[service.Outcome], int], when: str
) -> list[tuple[int, str]]:
    """Count the events whose writes finished; the lines the database could not store."""
    done, _ = await asyncio.wait(flight, return_when=when)
    failures = []
    for task in sorted(done, key=flight.__getitem__):
        number = flight.pop(task)
        error = task.exception()
        if isinstance(error, DatabaseUnavailable):
            failures.append((number, str(error)))
            continue
        if error is not None:
            raise error
        outcome = task.result()
        state.tally.lines += 1
        state.tally.counts[outcome.status] += 1
        if state.watcher is not None:
            state.watcher.stored(export, outcome)
    return failures


def _key(line: bytes | TooLong) -> validation.Key | None:
    """The dedupe key a line names, if it names one (whatever else is wrong with it)."""
    if isinstance(line, TooLong):
        return None
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return validation.lenient_key(document) if isinstance(document, dict) else None


async def _store(state: _Run, line: bytes | TooLong, where: str) -> service.Outcome:
    if isinstance(line, TooLong):
        reason = (
            f"{where}: {line.size} bytes, more than INVSYNC_MAX_BODY_BYTES ({state.limit}); "
            "the line is not kept"
        )
        return await service.receive_unread(state.store, line.content_hash, reason, CONTENT_TYPE)
    return await service.receive(state.store, line, CONTENT_TYPE, state.rules, state.recent, where)


def _reason(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "the compressed data ends early"
    return str(error) or type(error).__name__
