"""`inventory-sync import`: NewStore export files through the webhook's intake, on both
backends, with real files; Ctrl-C with a real process and SIGINT."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event, ledger_movement, outbox_message
from tests import factories as f

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A command line configured like `settings`, away from any `.env` file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INVSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", f.WEBHOOK_KEY)
    monkeypatch.setenv("INVSYNC_RETURN_LOCATIONS", '{"2": "damaged"}')
    return CliRunner()


def ndjson(*bodies: dict[str, Any] | bytes) -> bytes:
    return b"".join(
        (body if isinstance(body, bytes) else json.dumps(body).encode()) + b"\n" for body in bodies
    )


def imported(runner: CliRunner, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
    result = runner.invoke(cli, ["import", "--json", *args], input=stdin)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        summary["accepted"],
        summary["duplicate"],
        summary["ignored"],
        summary["quarantined"],
    )


def totals(db: Database) -> tuple[int, int, int]:
    with db.snapshot() as conn:
        return (
            conn.execute(select(func.count()).select_from(inbound_event)).scalar_one(),
            conn.execute(select(func.count()).select_from(ledger_movement)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbox_message)).scalar_one(),
        )


def errors(db: Database) -> list[str]:
    with db.snapshot() as conn:
        query = select(inbound_event.c.error).where(inbound_event.c.status == "quarantined")
        # In the order of their lines: up to --concurrency events are written at once.
        return sorted(conn.execute(query).scalars(), key=lambda error: error.split(":")[0])


class TestImport:
    def test_an_export_goes_through_the_webhooks_intake_once(
        self, runner: CliRunner, client: TestClient, db: Database, tmp_path: Path
    ) -> None:
        receipt = f.received(("A", 2), ("B", 3))
        events = [
            receipt,
            f.adjustment(("A", 1)),
            f.envelope("order.created", {"id": "o-1"}),
            b"{not json",
            f.received(("C", -1)),
        ]
        export = tmp_path / "1733560000000-data-abc.export"
        export.write_bytes(ndjson(*events[:3]) + b"\n" + ndjson(*events[3:]))

        first = imported(runner, str(export))
        assert counts(first) == (2, 0, 1, 2)
        assert (first["lines"], first["complete"]) == (5, True)
        assert first["last"] == f"{export} line 6"
        assert totals(db) == (5, 4, 2)
        assert errors(db) == [
            f"{export} line 5: body is not valid JSON: "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            f"{export} line 6: payload.items.0.quantity: negative quantity -1 is not allowed",
        ]

        again = imported(runner, str(export))
        # A line with no dedupe key is the same event again, answered as the webhook answers it.
        assert counts(again) == (0, 4, 0, 1)
        assert totals(db) == (5, 4, 2)
        # And NewStore delivering the same events later changes nothing either.
        assert f.post(client, receipt)["status"] == "duplicate"
        assert f.post(client, events[2])["status"] == "duplicate"
        assert totals(db) == (5, 4, 2)

    def test_of_two_lines_under_one_key_the_first_is_stored_as_the_webhook_would(
        self, runner: CliRunner, db: Database, tmp_path: Path
    ) -> None:
        # With several events in flight, the later of two conflicting lines must not win.
        bodies = []
        for n in range(40):
            first = f.adjustment((f"P{n}", 1))
            later = json.loads(json.dumps(first))
            later["payload"]["items"][0]["quantity"] = 7
            bodies += [first, later]
        export = tmp_path / "conflicts.export"
        export.write_bytes(ndjson(*bodies))
        summary = imported(runner, "--concurrency", "8", str(export))
        assert counts(summary) == (40, 0, 0, 40)
        with db.snapshot() as conn:
            quantities = set(conn.execute(select(ledger_movement.c.quantity)).scalars())
        assert quantities == {-1, 1}

    def test_gzip_and_standard_input(self, runner: CliRunner, db: Database, tmp_path: Path) -> None:
        compressed = tmp_path / "export.gz"
        compressed.write_bytes(gzip.compress(ndjson(f.received(("A", 1)))))
        piped = ndjson(f.received(("B", 1)), f.received(("C", 1)))
        summary = imported(runner, str(compressed), "-", stdin=piped)
        assert counts(summary) == (3, 0, 0, 0)
        assert summary["last"] == "<stdin> line 2"
        assert totals(db) == (3, 3, 3)

    def test_a_line_over_the_body_limit_is_quarantined_without_its_bytes(
        self, runner: CliRunner, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INVSYNC_MAX_BODY_BYTES", "1024")
        big = f.received(*((f"P-{n}", 1) for n in range(100)))
        export = tmp_path / "export"
        export.write_bytes(ndjson(big, f.received(("A", 1)), big))
        # One at a time, so that the first of the two equal lines is the one stored.
        summary = imported(runner, "--concurrency", "1", str(export))
        # The same line again is the same event, known by the hash of its bytes.
        assert counts(summary) == (1, 0, 0, 2)
        size = len(json.dumps(big))
        assert errors(db) == [
            f"{export} line 1: {size} bytes, more than INVSYNC_MAX_BODY_BYTES (1024); "
            "the line is not kept"
        ]
        with db.snapshot() as conn:
            body = conn.execute(
                select(inbound_event.c.raw_body).where(inbound_event.c.status == "quarantined")
            ).scalar_one()
        assert body == b""

    def test_what_cannot_be_read_is_said(self, runner: CliRunner, tmp_path: Path) -> None:
        missing = runner.invoke(cli, ["import", "nothing"])  # short: usage errors are wrapped
        assert missing.exit_code == 2
        assert "nothing: no such file" in missing.output
        twice = runner.invoke(cli, ["import", "-", "-"])
        assert twice.exit_code == 2
        cut = tmp_path / "cut.gz"
        cut.write_bytes(gzip.compress(ndjson(*(f.received(("A", 1)) for _ in range(50))))[:-20])
        result = runner.invoke(cli, ["import", str(cut)])
        assert result.exit_code == 1
        assert f"not read to the end: {cut}: the compressed data ends early" in result.output


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "inventory_sync", "import", *args]


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVSYNC_")}
    env.update(
        INVSYNC_DATABASE_URL=database_url,
        INVSYNC_WEBHOOK_KEYS=f.WEBHOOK_KEY,
        PYTHONPATH=str(ROOT / "src"),
    )
    return env


def stored_ids(db: Database) -> set[str]:
    with db.snapshot() as conn:
        return set(conn.execute(select(inbound_event.c.payload_id)).scalars())


def interrupted_once_stored(
    process: subprocess.Popen[bytes], db: Database, events: int
) -> dict[str, Any]:
    """SIGINT to an import once `events` events are stored: its summary, after it exits 130."""
    try:
        deadline = time.monotonic() + 60
        while totals(db)[0] < events:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    summary: dict[str, Any] = json.loads(out)
    return summary


class TestInterrupt:
    def test_ctrl_c_stops_between_events_and_a_second_run_goes_on(
        self, settings: Settings, db: Database, tmp_path: Path
    ) -> None:
        items = [(f"P-{n}", 1) for n in range(5)]
        events = [f.received(*items, id=f"e-{n}") for n in range(1, 3_001)]
        export = tmp_path / "export"
        export.write_bytes(ndjson(*events))
        process = subprocess.Popen(
            command("--json", str(export)),
            env=environment(settings.database_url),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        summary = interrupted_once_stored(process, db, 50)
        assert summary["interrupted"] is True
        assert summary["last"].startswith(f"{export} line ")
        last = int(summary["last"].rpartition(" ")[2])
        assert 50 <= last < len(events)
        # Every line up to the last is stored whole, and nothing after it.
        assert stored_ids(db) == {f"e-{n}" for n in range(1, last + 1)}
        assert totals(db) == (last, last * len(items), last)
        assert summary["accepted"] == last

        done = subprocess.run(
            command("--json", str(export)),
            env=environment(settings.database_url),
            cwd=tmp_path,
            capture_output=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        rest = json.loads(done.stdout)
        assert (rest["duplicate"], rest["accepted"]) == (last, len(events) - last)
        assert totals(db) == (len(events), len(events) * len(items), len(events))

    def test_ctrl_c_while_waiting_for_input_stops_at_once(
        self, settings: Settings, db: Database, tmp_path: Path
    ) -> None:
        process = subprocess.Popen(
            command("--json", "-"),
            env=environment(settings.database_url),
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdin is not None
        process.stdin.write(ndjson(*(f.received(("A", 1)) for _ in range(3))))
        process.stdin.flush()  # and the pipe stays open: the import waits for more
        summary = interrupted_once_stored(process, db, 3)
        assert (summary["interrupted"], summary["accepted"]) == (True, 3)
        assert summary["last"] == "<stdin> line 3"


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.write_bytes(ndjson(f.received(("A", 1))))
    env = environment("postgresql://postgres@127.0.0.1:1/nothing")
    done = subprocess.run(
        command(str(export)),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.decode().startswith("database unavailable: ")
    assert "Traceback" not in done.stderr.decode()
