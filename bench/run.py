"""Run the whole intake benchmark: product vs yardstick, on loopback, against local PostgreSQL.

    .venv/bin/python bench/run.py            # full run, about 20 minutes
    .venv/bin/python bench/run.py --quick    # smoke run, about a minute (python3 dev.py bench)

Creates fresh databases (invsync_bench_product, invsync_bench_yardstick,
invsync_bench_baseline), starts the product (`inventory-sync serve --no-worker`, later with the
worker or several processes), `bench/yardstick.py` (the fastest minimal correct intake, which
every ratio is against) and `bench/baseline.py` (the earlier baseline, which shares the
product's former choices; a second line) as subprocesses, drives them with wrk
(`bench/newstore.lua`) and `bench/client.py`, and writes `bench/results/<stamp>/`
(results.json, results.md, chart.png, logs, profile). `--publish` also copies results.md and
chart.png to docs/. Databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
ADMIN_DSN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-webhook-key"
HOST = "127.0.0.1"
PRODUCT_PORT, BASELINE_PORT, YARDSTICK_PORT, STANDIN_PORT = 8100, 8101, 8102, 8199
INDEXED_PORT = 8103
PRODUCT_TABLES = (
    "sync_attempt, outbox_message, ledger_movement, count_observation, shipment_line, inbound_event"
)


@dataclass(frozen=True)
class Plan:
    cell_seconds: int
    warmup_seconds: int
    sustained_seconds: int
    profile_seconds: int
    prefill_rows: int
    drain_timeout: int
    items: tuple[int, ...] = (1, 50, 500)
    connections: tuple[int, ...] = (4, 16)
    duplicates: tuple[float, ...] = (0.0, 0.2)
    # Paired phases (empty vs filled ledger, worker off vs on, one vs two API processes)
    # alternate this many times, so that one fast or slow spell cannot decide a ratio.
    alternations: int = 2
    peak_cells: int = 3
    settle_seconds: float = 3.0
    processes_phase: bool = True


FULL = Plan(
    cell_seconds=10,
    warmup_seconds=3,
    sustained_seconds=60,
    profile_seconds=15,
    prefill_rows=5_000_000,
    drain_timeout=180,
)
# Every phase once, as briefly as it still measures something: to keep the bench code working.
QUICK = Plan(
    cell_seconds=2,
    warmup_seconds=1,
    sustained_seconds=4,
    profile_seconds=0,
    prefill_rows=20_000,
    drain_timeout=30,
    items=(50,),
    connections=(16,),
    duplicates=(0.0,),
    alternations=1,
    peak_cells=1,
    settle_seconds=0.5,
    processes_phase=False,
)


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- databases ---------------------------------------------------------------------------


def dsn_for(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


def recreate_database(name: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


# --- processes ---------------------------------------------------------------------------


class Process:
    """A subprocess in its own session, its output in a log file; stopped by its own pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_port(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not listen on {port} within {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def in_background(loop: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run `loop(stop)` in a thread for the duration of the block; `stop` is set at its end."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextlib.contextmanager
def sample_rss(pid: int, every: float = 0.5) -> Iterator[list[tuple[float, float]]]:
    """Sample a process's RSS (MB) in the background: [(seconds since start, MB)]."""
    samples: list[tuple[float, float]] = []
    start = time.monotonic()

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            value = rss_mb(pid)
            if value is not None:
                samples.append((time.monotonic() - start, value))
            stop.wait(every)

    with in_background(loop):
        yield samples


# --- load --------------------------------------------------------------------------------


def wrk(
    url: str, *, connections: int, seconds: int, run_tag: str, items: int, dup: float
) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t",
        str(min(2, connections)),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "newstore.lua"),
        url,
        "--",
        run_tag,
        str(items),
        str(dup),
        KEY,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((row for row in done.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds_run = raw["duration_us"] / 1e6
    events = raw["requests"] / seconds_run
    errors = (
        raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["status_errors"]
        + raw["timeouts"]
        + raw["other"]
    )
    return {
        "events_s": events,
        "items_s": events * items,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "requests": raw["requests"],
        "accepted": raw["accepted"],
        "duplicate": raw["duplicate"],
        "raw": raw,
    }


@dataclass
class App:
    name: str
    url: str
    dsn: str
    process: Process | None = None
    events_table: str = "inbound_event"
    ledger_table: str = "ledger_movement"
    accepted_filter: str = "status = 'accepted'"
    settle_seconds: float = 3.0
    cells: list[dict[str, Any]] = field(default_factory=list)

    def truncate(self) -> None:
        tables = {
            "product": PRODUCT_TABLES,
            "yardstick": "ledger_row, outbox, raw_event",
            "indexed": "ledger_row, outbox, raw_event",
            "baseline": "ledger_row, raw_event",
        }[self.name]
        # A request wrk cut off at the end of a run may still be inserting: let it finish, and
        # retry if TRUNCATE still meets it (deadlock between their locks).
        for attempt in range(5):
            time.sleep(0.5)
            try:
                sql(self.dsn, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise

    def stored(self) -> tuple[int, int]:
        # One statement, one snapshot: a request wrk cut off at the end may commit meanwhile.
        time.sleep(0.5)
        events, ledger = sql(
            self.dsn,
            f"SELECT (SELECT count(*) FROM {self.events_table} WHERE {self.accepted_filter}), "
            f"(SELECT count(*) FROM {self.ledger_table})",
        )[0]
        return int(events), int(ledger)


def cpu_times() -> list[int]:
    """The machine's CPU time by state, in ticks (user, nice, system, idle, iowait, irq,
    softirq, steal, ...)."""
    return [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """Share of the machine's time the hypervisor gave to other guests: on a shared virtual
    machine it moves latency more than any change of ours."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return 100.0 * spent[7] / max(1, sum(spent)) if len(spent) > 7 else 0.0


def run_cell(
    app: App,
    *,
    items: int,
    connections: int,
    dup: float,
    seconds: int,
    truncate: bool = True,
    settled: bool = False,
) -> dict[str, Any]:
    """One wrk cell; `settled` starts it from a checkpoint and counts the checkpoints it causes."""
    if truncate:
        app.truncate()
    if settled:
        settle(app.dsn, app.settle_seconds)
        checkpoints_before, _ = server_counters(app.dsn)
    tag = f"{app.name[0]}{items}c{connections}d{int(dup * 100)}t{int(time.time() * 1000) % 10**8}"
    assert app.process is not None
    times_before = cpu_times()
    with sample_rss(app.process.pid) as rss:
        result = wrk(
            app.url, connections=connections, seconds=seconds, run_tag=tag, items=items, dup=dup
        )
    steal = steal_percent(times_before, cpu_times())
    events, ledger = app.stored()
    result.update(
        app=app.name,
        items=items,
        connections=connections,
        dup=dup,
        rss_max_mb=max((value for _, value in rss), default=None),
        steal_percent=steal,
        db_accepted_events=events,
        db_ledger_rows=ledger,
        # Every `accepted` answer must be in the database (a request cut off by wrk's end may
        # be committed without its answer being counted, hence >=).
        ack_check=events >= result["accepted"] if truncate else None,
        ledger_check=(ledger == events * items) if truncate else None,
    )
    if settled:
        result["checkpoints"] = server_counters(app.dsn)[0] - checkpoints_before
    log(
        f"  {app.name:8s} items={items:3d} conns={connections:2d} dup={dup:.0%}: "
        f"{result['events_s']:8.1f} ev/s  p50 {result['p50_ms']:.1f} ms  "
        f"p99 {result['p99_ms']:.1f} ms  errors {result['errors']}  ack_ok={result['ack_check']}  "
        f"steal {steal:.1f} %"
    )
    return result


# --- phases ------------------------------------------------------------------------------


def product_env(dsn: str, erp_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        INVSYNC_DATABASE_URL=dsn,
        INVSYNC_WEBHOOK_KEYS=KEY,
        INVSYNC_ADMIN_TOKENS="bench-admin-token",
        INVSYNC_LOG_FORMAT="json",
        INVSYNC_LOG_LEVEL="info",
    )
    env.pop("INVSYNC_ERP_URL", None)
    if erp_url:
        env["INVSYNC_ERP_URL"] = erp_url
    return env


def start_product(
    dsn: str, out: Path, *, worker: bool, erp_url: str | None = None, processes: int = 1
) -> Process:
    argv = [str(BIN / "inventory-sync"), "serve", "--host", HOST, "--port", str(PRODUCT_PORT)]
    if not worker:
        argv.append("--no-worker")
    if processes > 1:
        argv += ["--workers", str(processes)]
    name = "product-worker" if worker else "product" if processes == 1 else f"product-x{processes}"
    process = Process(name, argv, product_env(dsn, erp_url), out)
    process.wait_port(PRODUCT_PORT)
    return process


def has_worker_command() -> bool:
    done = subprocess.run(
        [str(BIN / "inventory-sync"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    return any(line.strip("│ ").startswith("worker ") for line in done.stdout.splitlines())


def profile_product(app: App, plan: Plan, out: Path) -> dict[str, Any]:
    """py-spy (GIL holder only) on the product under 50-item load; where the samples fall."""
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(py_spy).exists():
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    assert app.process is not None
    app.truncate()
    raw_path = out / "profile.collapsed"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(app.process.pid),
            "--duration",
            str(plan.profile_seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(raw_path),
            "--nonblocking",
            # Only the thread holding the GIL: where the API process spends CPU in Python.
            # Without it, threads blocked in psycopg's wait on PostgreSQL count as busy.
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out / "py-spy.log").open("wb"),
    )
    time.sleep(1)
    load = wrk(
        app.url,
        connections=16,
        seconds=plan.profile_seconds,
        run_tag=f"prof{int(time.time())}",
        items=50,
        dup=0.0,
    )
    try:
        spy.wait(plan.profile_seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(10)
    if not raw_path.exists():
        return {"skipped": f"py-spy failed, see {out / 'py-spy.log'}"}
    summary = report.summarise_profile(raw_path.read_text())
    summary["events_s_while_profiling"] = load["events_s"]
    return summary


def peak_rate(app: App, plan: Plan) -> dict[str, Any]:
    """The product's maximum rate at 50 items, 16 connections: the median of three cells run
    just before the sustained run, so that one lucky or unlucky cell does not set its rate."""
    cells = [
        run_cell(app, items=50, connections=16, dup=0.0, seconds=plan.cell_seconds)
        for _ in range(plan.peak_cells)
    ]
    rates = sorted(cell["events_s"] for cell in cells)
    return {"events_s": rates, "median": rates[len(rates) // 2]}


@dataclass
class WalFlushStalls:
    spells: list[tuple[float, float]] = field(default_factory=list)
    error: str | None = None


@contextlib.contextmanager
def wal_flush_stalls(dsn: str, every: float = 0.01) -> Iterator[WalFlushStalls]:
    """Spells of at least 50 ms in which every sample of `pg_stat_activity`, taken about every
    10 ms, found some session of the database at `dsn` waiting for the WAL to be written or
    flushed (`LWLock:WALWrite`, `IO:WALSync`, `IO:WALWrite`): [(wall-clock start, seconds)].
    Back-to-back flushes can make one spell, and its length is known to a sample or two; what
    it shows is a stretch in which commits could not complete, as when one `fdatasync` of the
    WAL is slow: a tail made by the disk rather than by the app."""
    found = WalFlushStalls()
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state = 'active' AND (wait_event_type, wait_event) IN "
        "(('LWLock', 'WALWrite'), ('IO', 'WALSync'), ('IO', 'WALWrite'))"
    )

    def loop(stop: threading.Event) -> None:
        began: float | None = None
        last = 0.0
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while True:
                    now = time.time()
                    waiting = conn.execute(query).fetchone()
                    if waiting and waiting[0] and not stop.is_set():
                        began = now if began is None else began
                        last = now
                    elif began is not None:  # the spell ended, or the run did
                        if last - began >= 0.05:
                            found.spells.append((began, last - began))
                        began = None
                    if stop.is_set():
                        return
                    stop.wait(every)
        except psycopg.Error as error:
            found.error = str(error).splitlines()[0]

    with in_background(loop):
        yield found


def server_counters(dsn: str) -> tuple[int, int]:
    """(checkpoints started so far, WAL position in bytes)."""
    version = int(sql(dsn, "SHOW server_version_num")[0][0])
    # PostgreSQL 17 moved the checkpoint counters to their own view.
    counted = (
        "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
        if version >= 170000
        else "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    )
    row = sql(dsn, f"SELECT ({counted}), pg_current_wal_lsn() - '0/0'::pg_lsn")[0]
    return int(row[0]), int(row[1])


def settle(dsn: str, seconds: float = 3.0) -> None:
    """Start a measurement from a checkpointed server and a quiet disk.

    Both apps' databases share one server, WAL and disk: a checkpoint owed to the phases before
    (or to the other app's run) would land in one measurement and not another. Checkpoints a
    measurement causes itself are counted. TRUNCATE's files are unlinked at that checkpoint: let
    the disk absorb that, and the dirty pages the phases before left in the page cache, before
    the clock starts.
    """
    sql(dsn, "CHECKPOINT")
    os.sync()
    time.sleep(seconds)


def sustained(app: App, rate: float, plan: Plan, out: Path) -> dict[str, Any]:
    """Open-loop run at `rate`; then every acknowledged payload id must be in the database."""
    assert app.process is not None
    app.truncate()
    settle(app.dsn, plan.settle_seconds)
    tag = f"sus{int(time.time())}"
    result_path = out / f"sustained_client_{app.name}.json"
    times_before = cpu_times()
    checkpoints_before, wal_before = server_counters(app.dsn)
    with sample_rss(app.process.pid) as rss, wal_flush_stalls(app.dsn) as stalls:
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "client.py"),
                "--url",
                app.url,
                "--key",
                KEY,
                "--rate",
                f"{rate:.1f}",
                "--seconds",
                str(plan.sustained_seconds),
                "--items",
                "50",
                "--connections",
                "16",
                "--run-tag",
                tag,
                "--out",
                str(result_path),
            ],
            timeout=plan.sustained_seconds + 120,
            check=True,
        )
    steal = steal_percent(times_before, cpu_times())
    checkpoints_after, wal_after = server_counters(app.dsn)
    result: dict[str, Any] = json.loads(result_path.read_text())
    acked: list[str] = result.pop("acked_ids")
    started = result.pop("started_at")
    rows = sql(
        app.dsn,
        f"SELECT e.payload_id, count(m.id) FROM {app.events_table} e "
        f"LEFT JOIN {app.ledger_table} m ON m.event_id = e.id "
        f"WHERE e.payload_id = ANY(%s) AND ({app.accepted_filter}) GROUP BY e.payload_id",
        (acked,),
    )
    found = dict(rows)
    missing = [payload_id for payload_id in acked if payload_id not in found]
    short = [payload_id for payload_id, count in found.items() if count != 50]
    series = [value for _, value in rss]
    window = max(1, int(10 / 0.5))
    result.update(
        acked=len(acked),
        acked_missing_in_db=len(missing),
        acked_with_wrong_ledger_rows=len(short),
        rss_first_10s_mb=sum(series[:window]) / max(1, len(series[:window])),
        rss_last_10s_mb=sum(series[-window:]) / max(1, len(series[-window:])),
        rss_max_mb=max(series, default=None),
        rss_series=rss[:: max(1, len(rss) // 120)],
        steal_percent=steal,
        checkpoints=checkpoints_after - checkpoints_before,
        wal_kb_per_event=(wal_after - wal_before) / 1024 / max(1, result["answered"]),
        wal_flush_stalls=[
            (round(at - started, 2), round(1000 * length)) for at, length in stalls.spells
        ],
        wal_flush_stalls_error=stalls.error,
    )
    log(
        f"  {app.name} sustained {rate:.0f} ev/s for {plan.sustained_seconds}s: "
        f"p50 {result['p50_ms']:.1f} "
        f"p99 {result['p99_ms']:.1f} max {result['max_ms']:.1f} ms, over 1 s: "
        f"{result['over_1s']}, acked {len(acked)}, missing {len(missing)}, "
        f"RSS {result['rss_first_10s_mb']:.0f} -> {result['rss_last_10s_mb']:.0f} MB, "
        f"CPU steal {steal:.1f} %, {result['checkpoints']} checkpoint(s), "
        f"WAL {result['wal_kb_per_event']:.1f} KB/event, WAL flush stalls (s, ms): "
        f"{result['wal_flush_stalls']}"
    )
    return result


def pending(dsn: str) -> int:
    return int(sql(dsn, "SELECT count(*) FROM outbox_message WHERE status = 'pending'")[0][0])


def measure_drain(dsn: str, timeout: int) -> dict[str, Any]:
    """Poll the outbox until nothing is pending; documents/s from the first delivery on."""
    initial = pending(dsn)
    start = time.monotonic()
    first: tuple[float, int] | None = None
    last = initial
    while time.monotonic() - start < timeout:
        last = pending(dsn)
        now = time.monotonic()
        if first is None and last < initial:
            first = (now, last)
        if last == 0:
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - start
    delivered = initial - last
    rate = None
    if first is not None and last == 0 and now > first[0]:
        rate = first[1] / (now - first[0])
    elif elapsed > 0:
        rate = delivered / elapsed
    return {
        "pending_at_start": initial,
        "pending_at_end": last,
        "delivered": delivered,
        "seconds": elapsed,
        "documents_s": rate,
        "documents_s_including_startup": delivered / elapsed if elapsed else None,
    }


REQUEUE = """
UPDATE outbox_message SET status = 'pending', attempts = 0, next_attempt_at = now(),
    claimed_by = NULL, claimed_until = NULL, delivered_at = NULL, last_error = NULL,
    last_status_code = NULL
WHERE status = 'delivered'
"""


def drain_with_worker(
    dsn: str,
    erp_url: str,
    out: Path,
    plan: Plan,
    *,
    concurrency: int | None = None,
    requeue: bool = False,
) -> dict[str, Any]:
    """`inventory-sync worker` into the stand-in until nothing is pending."""
    if requeue:
        sql(dsn, "TRUNCATE sync_attempt")
        sql(dsn, REQUEUE)
        # Every row now has a dead version that autovacuum (off on the reference machine)
        # would clear in service; without this the worker would walk them all.
        sql(dsn, "VACUUM ANALYZE outbox_message")
    env = product_env(dsn, erp_url)
    how = "inventory-sync worker"
    if concurrency is not None:
        env["INVSYNC_ERP_CONCURRENCY"] = str(concurrency)
        how += f", INVSYNC_ERP_CONCURRENCY={concurrency}"
    else:
        how += ", default concurrency"
    log(f"drain: {how}, {pending(dsn)} pending")
    worker = Process("worker", [str(BIN / "inventory-sync"), "worker"], env, out)
    try:
        result = {"how": how, **measure_drain(dsn, plan.drain_timeout)}
    finally:
        worker.stop()
    log(f"  {result['documents_s'] or 0:.0f} documents/s ({result['delivered']} delivered)")
    return result


PREFILL = """
INSERT INTO inbound_event (slot, tenant, name, payload_id, chunk_number, status, content_hash,
    location_id, occurred_at, published_at, raw_body, content_type, received_at, processed_at)
SELECT 'prefill:' || g, 'acme', 'inventory_transaction.items_received', 'prefill-' || g, 1,
    'accepted', md5(g::text), 'US-NYC-' || lpad((g %% 50)::text, 2, '0'),
    now() - g * interval '1 second', now(), convert_to('{}', 'UTF8'), 'application/json',
    now(), now()
FROM generate_series(1, %(events)s) AS g;
INSERT INTO ledger_movement (id, event_id, tenant, location_id, stock_location, product_id,
    quantity, kind, occurred_at, recorded_at, line_number, leg, "references")
SELECT e.id * 2097152 + 2 * l, e.id, 'acme', e.location_id, 'main',
    'SKU-' || lpad(((e.id * 50 + l) %% 20000)::text, 6, '0'), (l %% 7) + 1, 'receipt',
    e.occurred_at, now(), l, 0, '{}'::json
FROM inbound_event e CROSS JOIN generate_series(1, 50) AS l
WHERE e.slot LIKE 'prefill:%%';
INSERT INTO outbox_message (id, event_id, tenant, type, location_id, document, status,
    attempts, next_attempt_at, created_at, updated_at, delivered_at)
SELECT md5('prefill' || e.id), e.id, 'acme', 'inventory.receipt', e.location_id, '{}',
    'delivered', 1, now(), now(), now(), now()
FROM inbound_event e WHERE e.slot LIKE 'prefill:%%';
"""


def prefill(dsn: str, rows: int) -> float:
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in PREFILL.split(";"):
            if statement.strip():
                conn.execute(statement, {"events": rows // 50})
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    version = sql(ADMIN_DSN, "SHOW server_version")[0][0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "postgresql": version,
        "python": platform.python_version(),
        "git_commit": commit,
        "load_average_at_start": os.getloadavg(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument("--publish", action="store_true", help="copy table and chart to docs/")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy phase")
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument(
        "--worker-only",
        action="store_true",
        help="only the drain (after one 50-item cell fills the outbox) and worker on/off phases",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    stamp += "-worker" if args.worker_only else ""
    out = BENCH / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (" --worker-only" if args.worker_only else ""),
        "plan": plan.__dict__,
        "machine": machine(),
    }
    log(f"results in {out}; load average {results['machine']['load_average_at_start']}")

    product_db, yardstick_db, baseline_db, indexed_db = (
        "invsync_bench_product",
        "invsync_bench_yardstick",
        "invsync_bench_baseline",
        "invsync_bench_indexed",
    )
    product = App(
        "product",
        f"http://{HOST}:{PRODUCT_PORT}/webhooks/newstore",
        "",
        settle_seconds=plan.settle_seconds,
    )
    yardstick = App(
        "yardstick",
        f"http://{HOST}:{YARDSTICK_PORT}/webhooks/newstore",
        "",
        events_table="raw_event",
        ledger_table="ledger_row",
        settle_seconds=plan.settle_seconds,
    )
    # The yardstick with the product's position index: not a reference for any ratio, a
    # measure of what that one index costs the irreducible work.
    indexed = App(
        "indexed",
        f"http://{HOST}:{INDEXED_PORT}/webhooks/newstore",
        "",
        events_table="raw_event",
        ledger_table="ledger_row",
        settle_seconds=plan.settle_seconds,
    )
    baseline = App(
        "baseline",
        f"http://{HOST}:{BASELINE_PORT}/webhooks/newstore",
        "",
        events_table="raw_event",
        ledger_table="ledger_row",
        accepted_filter="true",
        settle_seconds=plan.settle_seconds,
    )
    for port in (PRODUCT_PORT, BASELINE_PORT, YARDSTICK_PORT, INDEXED_PORT, STANDIN_PORT):
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
            sys.exit(f"port {port} is already in use; stop what listens there first")
    processes: list[Process] = []
    try:
        product.dsn = recreate_database(product_db)
        yardstick.dsn = recreate_database(yardstick_db)
        baseline.dsn = recreate_database(baseline_db)
        indexed.dsn = recreate_database(indexed_db)
        subprocess.run(
            [str(BIN / "inventory-sync"), "db", "upgrade"],
            env=product_env(product.dsn),
            check=True,
            capture_output=True,
            timeout=120,
        )
        product.process = start_product(product.dsn, out, worker=False)
        processes.append(product.process)
        baseline_env = {**os.environ, "BENCH_DATABASE_URL": baseline.dsn}
        baseline.process = Process(
            "baseline",
            [sys.executable, str(BENCH / "baseline.py"), "--port", str(BASELINE_PORT)],
            baseline_env,
            out,
        )
        processes.append(baseline.process)
        baseline.process.wait_port(BASELINE_PORT)
        yardstick.process = Process(
            "yardstick",
            [sys.executable, str(BENCH / "yardstick.py"), "--port", str(YARDSTICK_PORT)],
            {**os.environ, "BENCH_DATABASE_URL": yardstick.dsn, "BENCH_WEBHOOK_KEY": KEY},
            out,
        )
        processes.append(yardstick.process)
        yardstick.process.wait_port(YARDSTICK_PORT)
        indexed.process = Process(
            "indexed",
            [sys.executable, str(BENCH / "yardstick.py"), "--port", str(INDEXED_PORT),
             "--position-index"],
            {**os.environ, "BENCH_DATABASE_URL": indexed.dsn, "BENCH_WEBHOOK_KEY": KEY},
            out,
        )  # fmt: skip
        processes.append(indexed.process)
        indexed.process.wait_port(INDEXED_PORT)

        log("warm-up")
        for app in (product, yardstick, indexed, baseline):
            wrk(app.url, connections=16, seconds=plan.warmup_seconds, run_tag=f"w{app.name}",
                items=50, dup=0.0)  # fmt: skip

        if args.worker_only:
            log("filling the outbox: 50 items, 16 connections, worker off")
            results["fill"] = run_cell(
                product, items=50, connections=16, dup=0.0, seconds=plan.cell_seconds
            )
        else:
            log("HTTP floor (yardstick /noop)")
            floor = []
            for connections in plan.connections:
                cell = wrk(
                    f"http://{HOST}:{YARDSTICK_PORT}/noop",
                    connections=connections,
                    seconds=plan.cell_seconds,
                    run_tag="noop",
                    items=50,
                    dup=0.0,
                )
                cell.update(app="noop", items=50, connections=connections, dup=0.0)
                log(f"  noop conns={connections}: {cell['events_s']:.0f} req/s")
                floor.append(cell)
            results["floor"] = floor

            log("matrix")
            for items in plan.items:
                for connections in plan.connections:
                    for dup in plan.duplicates:
                        for app in (product, yardstick, indexed, baseline):
                            app.cells.append(
                                run_cell(
                                    app,
                                    items=items,
                                    connections=connections,
                                    dup=dup,
                                    seconds=plan.cell_seconds,
                                )
                            )
            results["product"] = product.cells
            results["yardstick"] = yardstick.cells
            results["baseline"] = baseline.cells
            results["indexed"] = indexed.cells

            if not args.no_profile and plan.profile_seconds:
                log("profile (py-spy, 50 items, 16 connections)")
                results["profile"] = profile_product(product, plan, out)

            log("the product's max rate at 50 items, 16 connections: median of three cells")
            results["peak"] = peak_rate(product, plan)
            peak = results["peak"]["median"]
            log(f"sustained run at half of the product's max rate at 50 items ({peak:.0f} ev/s)")
            results["sustained"] = sustained(product, peak / 2, plan, out)
            # The same rate through the irreducible work: what this machine's own tail is.
            results["sustained_reference"] = sustained(yardstick, peak / 2, plan, out)

        worker_cli = has_worker_command()
        standin = Process(
            "erp-standin",
            [sys.executable, str(BENCH / "erp_standin.py"), "--port", str(STANDIN_PORT)],
            dict(os.environ),
            out,
        )
        processes.append(standin)
        standin.wait_port(STANDIN_PORT)
        erp_url = f"http://{HOST}:{STANDIN_PORT}/erp"
        if worker_cli:
            results["drain"] = drain_with_worker(product.dsn, erp_url, out, plan)
            if not args.quick:
                results["drain_concurrency_16"] = drain_with_worker(
                    product.dsn, erp_url, out, plan, concurrency=16, requeue=True
                )
        else:
            results["drain"] = {"how": "no `inventory-sync worker` command in this build"}
            log("  no `inventory-sync worker` command; drain measured with serve + worker below")

        if not args.worker_only:
            log(f"ledger pre-filled with {plan.prefill_rows:,} rows vs empty (50 items, 16 conns)")
            # Filling a million rows writes about 380 MB of WAL, on top of the phases' before:
            # the checkpoint that calls for would otherwise land in the measured cell, so every
            # cell starts settled. Empty and filled alternate, twice, as worker off and on do
            # below: one cell of each let a single fast or slow spell decide the ratio.
            by_ledger: dict[str, list[dict[str, Any]]] = {"empty": [], "prefilled": []}
            fills = []

            def ledger_cell(*, truncate: bool) -> dict[str, Any]:
                return run_cell(
                    product,
                    items=50,
                    connections=16,
                    dup=0.0,
                    seconds=plan.cell_seconds,
                    truncate=truncate,
                    settled=True,
                )

            for _ in range(plan.alternations):
                by_ledger["empty"].append(ledger_cell(truncate=True))
                product.truncate()
                fills.append(prefill(product.dsn, plan.prefill_rows))
                log(f"  pre-filled in {fills[-1]:.1f}s")
                by_ledger["prefilled"].append(ledger_cell(truncate=False))
            mean = {
                side: sum(c["events_s"] for c in cs) / len(cs) for side, cs in by_ledger.items()
            }
            results["prefilled"] = {
                "rows": plan.prefill_rows,
                "fill_seconds": max(fills),
                "empty": by_ledger["empty"][-1],
                "prefilled": by_ledger["prefilled"][-1],
                "cells": by_ledger,
                "mean_events_s": mean,
                "ratio": mean["prefilled"] / mean["empty"],
            }

        log("worker on: serve with its worker process, ERP stand-in answering at once")
        # Off and on alternate, twice: one cell of each let a single fast or slow spell of
        # the machine decide the ratio.
        cells: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for worker in (False, True) * plan.alternations:
            product.process.stop()
            processes.remove(product.process)
            product.truncate()
            cells[worker].append(
                run_cell_restarted(product, out, plan, processes, worker=worker, erp_url=erp_url)
            )
        delivered = int(
            sql(product.dsn, "SELECT count(*) FROM outbox_message WHERE status = 'delivered'")[0][0]
        )
        drain_after = measure_drain(product.dsn, plan.drain_timeout if delivered else 5)
        off, on = (
            {"events_s": sum(c["events_s"] for c in cells[w]) / len(cells[w]), "cells": cells[w]}
            for w in (False, True)
        )
        results["worker_on"] = {
            "off": off,
            "on": on,
            "ratio": on["events_s"] / off["events_s"],
            "delivered_during_run": delivered,
            "drain_after_run": drain_after,
        }
        log(
            f"  worker on/off {results['worker_on']['ratio']:.2f}; delivered during run "
            f"{delivered}; drain after: {drain_after['documents_s']}"
        )

        if plan.processes_phase and not args.worker_only:
            log("serve --workers 2 vs 1 (50 items, 16 connections, no worker), alternating")
            by_processes: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            for count in (1, 2) * plan.alternations:
                product.process.stop()
                processes.remove(product.process)
                product.truncate()
                by_processes[count].append(
                    run_cell_restarted(
                        product, out, plan, processes, worker=False, processes_count=count
                    )
                )
            means = {n: sum(c["events_s"] for c in cs) / len(cs) for n, cs in by_processes.items()}
            results["processes"] = {
                "cells": by_processes,
                "mean_events_s": means,
                "ratio": means[2] / means[1],
            }
            log(f"  two API processes / one: {results['processes']['ratio']:.2f}")
    finally:
        for process in reversed(processes):
            with contextlib.suppress(Exception):
                process.stop()
        if not args.keep_databases:
            for name in (product_db, yardstick_db, baseline_db, indexed_db):
                with contextlib.suppress(Exception):
                    drop_database(name)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

    if args.worker_only:
        (out / "results.md").write_text(report.extras(results) + "\n")
    else:
        report.write(results, out)
    latest = BENCH / "results" / "latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name)
    if args.publish:
        shutil.copy(out / "results.md", ROOT / "docs" / "performance-results.md")
        if (out / "chart.png").exists():
            shutil.copy(out / "chart.png", ROOT / "docs" / "performance-chart.png")
    log(f"done: {out / 'results.md'}")


def run_cell_restarted(
    app: App,
    out: Path,
    plan: Plan,
    processes: list[Process],
    *,
    worker: bool,
    erp_url: str | None = None,
    processes_count: int = 1,
) -> dict[str, Any]:
    app.process = start_product(
        app.dsn, out, worker=worker, erp_url=erp_url, processes=processes_count
    )
    processes.append(app.process)  # stopped by main()'s finally whatever happens next
    wrk(app.url, connections=16, seconds=plan.warmup_seconds, run_tag=f"w{int(time.time())}",
        items=50, dup=0.0)  # fmt: skip
    app.truncate()
    return run_cell(app, items=50, connections=16, dup=0.0, seconds=plan.cell_seconds)


if __name__ == "__main__":
    main()
