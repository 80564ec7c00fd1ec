"""Reading export files (lines, line ends, lines too long to hold, gzip) and what an import
does when the database fails under it, on an in-memory store."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from pathlib import Path

from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.intake import exports
from inventory_sync.intake.classify import Rules, Status, sha256
from tests import factories as f
from tests.fakes import FakeStore


class Recording(io.BytesIO):
    """A stream that remembers the most it was ever asked to read at once."""

    largest_read = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        assert size is not None, "an unbounded read"
        assert size > 0, "an unbounded read"
        self.largest_read = max(self.largest_read, size)
        return super().readline(size)


def lines(data: bytes, limit: int) -> list[tuple[int, bytes | exports.TooLong]]:
    return list(exports.Export("test", io.BufferedReader(io.BytesIO(data))).lines(limit))


class TestLines:
    def test_line_ends_blank_lines_and_a_last_line_without_an_end(self) -> None:
        data = b'{"a":1}\n\n  \r\n{"b":2}\r\n{"c":3}'
        assert lines(data, 1024) == [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}')]

    def test_a_line_of_exactly_the_limit_is_kept_with_either_line_end(self) -> None:
        body = b"x" * 1024
        assert lines(body + b"\r\n" + body + b"\n" + body, 1024) == [
            (1, body),
            (2, body),
            (3, body),
        ]

    def test_a_longer_line_is_hashed_not_held_and_the_next_one_read(self) -> None:
        long = b"y" * 300_000
        stream = Recording(b"a\n" + long + b"\r\nb\n" + b"z" * 1025)
        found = list(exports._lines(stream, 1024))
        assert found == [
            (1, b"a"),
            (2, exports.TooLong(300_000, sha256(long))),
            (3, b"b"),
            (4, exports.TooLong(1025, sha256(b"z" * 1025))),
        ]
        assert stream.largest_read <= 64 * 1024

    def test_a_line_just_over_the_limit(self) -> None:
        over = b"w" * 1025
        assert lines(over + b"\n" + over + b"\r\n", 1024) == [
            (1, exports.TooLong(1025, sha256(over))),
            (2, exports.TooLong(1025, sha256(over))),
        ]

    def test_gzip_is_recognised_by_its_first_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "export"
        path.write_bytes(gzip.compress(b'{"a":1}\n{"b":2}\n'))
        export = exports.Export.open(str(path))
        try:
            assert list(export.lines(1024)) == [(1, b'{"a":1}'), (2, b'{"b":2}')]
            assert export.position == export.size
        finally:
            export.close()


def write_export(path: Path, bodies: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    return str(path)


def run(store: FakeStore, paths: list[str], in_flight: int = 1) -> exports.Tally:
    return asyncio.run(
        exports.run(store, paths, Rules(), 1024 * 1024, exports.Interruption(), in_flight=in_flight)
    )


class FailingAt(FakeStore):
    """Unavailable from the `n`-th write on."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    async def record_event(self, *args: object, **kwargs: object) -> object:
        if self.writes + 1 >= self.n:
            raise DatabaseUnavailable("connection refused")
        return await super().record_event(*args, **kwargs)  # type: ignore[arg-type]


class TestRun:
    def test_every_line_once_in_order_across_files(self, tmp_path: Path) -> None:
        first = write_export(tmp_path / "1", [f.received(("A", 1)), f.received(("B", 1))])
        second = write_export(tmp_path / "2", [f.received(("C", 1))])
        store = FakeStore()
        tally = run(store, [first, second], in_flight=4)
        assert (tally.lines, tally.counts[Status.ACCEPTED], tally.complete) == (3, 3, True)
        assert tally.last == f"{second} line 1"
        assert [e.write.effect.movements.product_id for e in store.events.values()] == [  # type: ignore[union-attr]
            ["A"],
            ["B"],
            ["C"],
        ]

    def test_the_same_key_with_other_content_is_quarantined_with_its_line(
        self, tmp_path: Path
    ) -> None:
        first = f.received(("A", 1))
        other = f.received(("A", 2), id=first["payload"]["id"])
        path = write_export(tmp_path / "e", [first, first, other])
        store = FakeStore()
        tally = run(store, [path])
        assert [tally.counts[s] for s in exports.ANSWERS] == [1, 1, 0, 1]
        assert store.events[2].columns["error"] == (
            f"{path} line 3: dedupe key already used by event 1 with different content"
        )

    def test_a_database_that_goes_away_stops_the_import_at_that_line(self, tmp_path: Path) -> None:
        path = write_export(tmp_path / "e", [f.received((p, 1)) for p in "ABCDE"])
        tally = run(FailingAt(3), [path, path])
        assert tally.lines == 2
        assert tally.unavailable == f"connection refused (at {path} line 3, not stored)"
        assert tally.last == f"{path} line 2"
        assert not tally.complete

    def test_a_file_that_cannot_be_opened_or_read_to_its_end_is_noted(self, tmp_path: Path) -> None:
        whole = gzip.compress(
            "".join(json.dumps(f.received(("A", n))) + "\n" for n in range(1, 200)).encode()
        )
        cut = tmp_path / "cut.gz"
        cut.write_bytes(whole[: len(whole) // 2])
        good = write_export(tmp_path / "good", [f.received(("B", 1))])
        tally = run(FakeStore(), [str(tmp_path / "missing"), str(cut), good])
        assert tally.unreadable[0] == f"{tmp_path / 'missing'}: No such file or directory"
        assert tally.unreadable[1].startswith(f"{cut}: the compressed data ends early (after line ")
        assert 0 < tally.lines < 200
        assert tally.last == f"{good} line 1"
