"""`inventory-sync import` of a NewStore export file, beside the webhook on the same bodies.

    .venv/bin/python bench/import_file.py                        # 100,000 lines of 50 items
    .venv/bin/python bench/import_file.py --lines 20000 --concurrency 4 16

Creates `invsync_bench_import` (dropped at the end) and writes an export file of `--lines`
events, the bodies `bench/newstore.lua` posts (`items_received`, `--items` lines each, a unique
`payload.id`). For each `--concurrency`: empties the tables, runs `inventory-sync import --json`
on the file, checks that every line is one accepted event with its ledger rows and its ERP
document, and records events/s, the command's CPU per event and its peak RSS; then imports the
file once more (every line a duplicate). Then the webhook: `inventory-sync serve --no-worker`
driven by wrk with the same bodies for `--seconds` at 4 and 16 connections (`bench/run.py`'s
cell, tables emptied first), with the API process's CPU per event. Results go to
`bench/results/<stamp>-import/`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

DATABASE = "invsync_bench_import"


def write_export(path: Path, lines: int, items: int) -> None:
    """The bodies of bench/newstore.lua, one per line, byte for byte."""
    parts = ",".join(
        f'{{"product_id":"SKU-{i:06d}","quantity":{i % 7 + 1}}}' for i in range(1, items + 1)
    )
    prefix = (
        '{"tenant":"acme","name":"inventory_transaction.items_received",'
        '"published_at":"2024-05-14T09:32:18.402Z","payload":{"id":"'
    )
    suffix = (
        '","fulfillment_location_id":"US-NYC-01","processed_at":"2024-05-14T09:31:55.117Z",'
        f'"items":[{parts}]}}}}\n'
    )
    with path.open("w") as out:
        for n in range(1, lines + 1):
            out.write(f"{prefix}import-{n}{suffix}")


def stored(dsn: str) -> tuple[int, int, int]:
    events, ledger, documents = run.sql(
        dsn,
        "SELECT (SELECT count(*) FROM inbound_event WHERE status = 'accepted'), "
        "(SELECT count(*) FROM ledger_movement), (SELECT count(*) FROM outbox_message)",
    )[0]
    return int(events), int(ledger), int(documents)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_once(dsn: str, export: Path, concurrency: int) -> dict[str, Any]:
    argv = [
        str(run.BIN / "inventory-sync"),
        "import",
        "--json",
        "--concurrency",
        str(concurrency),
        str(export),
    ]
    load = os.getloadavg()
    cpu_before = children_cpu_seconds()
    started = time.monotonic()
    done = subprocess.run(
        argv, env=run.product_env(dsn), capture_output=True, text=True, check=False, timeout=3600
    )
    wall = time.monotonic() - started
    cpu = children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-1000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    # The largest RSS of any child waited for so far: each run's is at least the one before.
    summary.update(
        concurrency=concurrency,
        wall_seconds=round(wall, 2),
        # The command's own CPU per event, start-up included: less moved by other work on the
        # machine than a rate, and comparable with the API process's per webhook.
        cpu_us_per_event=round(cpu * 1e6 / max(1, summary["lines"]), 1),
        peak_rss_mb_so_far=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        load_average_before=load,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=int, default=10, help="per webhook cell")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    out = run.BENCH / "results" / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-import")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python bench/import_file.py " + " ".join(sys.argv[1:]),
        "machine": run.machine(),
        "lines": args.lines,
        "items": args.items,
        "imports": [],
        "webhook": [],
    }
    export = out / "export.ndjson"
    write_export(export, args.lines, args.items)
    results["file_bytes"] = export.stat().st_size
    run.log(f"{export}: {args.lines:,} lines, {results['file_bytes'] / 1e6:.0f} MB")
    dsn = run.recreate_database(DATABASE)
    product = None
    try:
        subprocess.run(
            [str(run.BIN / "inventory-sync"), "db", "upgrade"],
            env=run.product_env(dsn),
            check=True,
            capture_output=True,
            timeout=120,
        )
        app = run.App("product", f"http://{run.HOST}:{run.PRODUCT_PORT}/webhooks/newstore", dsn)
        for concurrency in args.concurrency:
            app.truncate()
            run.settle(dsn, 1.0)
            first = import_once(dsn, export, concurrency)
            events, ledger, documents = stored(dsn)
            first.update(
                check=(first["accepted"], events, documents, ledger)
                == (args.lines, args.lines, args.lines, args.lines * args.items)
            )
            again = import_once(dsn, export, concurrency)
            again.update(check=again["duplicate"] == args.lines and stored(dsn)[0] == events)
            results["imports"].append({"first": first, "again": again})
            run.log(
                f"  import c={concurrency:2d}: {first['events_per_second']:7.1f} ev/s "
                f"(again, all duplicate: {again['events_per_second']:7.1f}); "
                f"CPU {first['cpu_us_per_event']:.0f} / {again['cpu_us_per_event']:.0f} µs/event; "
                f"ok={first['check'] and again['check']}; "
                f"peak RSS so far {again['peak_rss_mb_so_far']:.0f} MB"
            )
        product = run.start_product(dsn, out, worker=False)
        run.wrk(app.url, connections=4, seconds=2, run_tag="warm", items=args.items, dup=0.0)
        app.process = product
        for connections in (4, 16):
            cpu_before = cpu_seconds(product.pid)
            cell = run.run_cell(
                app, items=args.items, connections=connections, dup=0.0, seconds=args.seconds
            )
            cell.pop("raw", None)
            cell["cpu_us_per_event"] = round(
                (cpu_seconds(product.pid) - cpu_before) * 1e6 / max(1, cell["requests"]), 1
            )
            run.log(f"    API process CPU {cell['cpu_us_per_event']:.0f} µs per event")
            results["webhook"].append(cell)
    finally:
        if product is not None:
            product.stop()
        with contextlib.suppress(Exception):
            run.drop_database(DATABASE)
        export.unlink(missing_ok=True)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    run.log(f"done: {out / 'results.json'}")


if __name__ == "__main__":
    main()
