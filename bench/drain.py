"""The worker's drain rate on its own: N pending documents into the ERP stand-in.

    .venv/bin/python bench/drain.py                      # 20,000 documents at concurrency 4, 16
    .venv/bin/python bench/drain.py --messages 5000 --concurrency 4 --profile

Creates `invsync_bench_drain` (dropped at the end), fills the outbox with N pending messages
(a 50-line document each, about 3.8 KB, like a 50-item receipt) by `INSERT ... SELECT
generate_series`, starts `bench/erp_standin.py`, then for every concurrency: re-queues every
message, runs `inventory-sync worker` until nothing is pending, and checks that every message is
delivered, has exactly one attempt logged and no claim left. `--profile` records the worker with
`py-spy record --gil` (raw collapsed stacks) and prints its top frames. Results go to
`bench/results/<stamp>-drain/`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

DATABASE = "invsync_bench_drain"

FILL = """
INSERT INTO inbound_event (slot, tenant, name, payload_id, chunk_number, status, content_hash,
    location_id, occurred_at, published_at, raw_body, content_type, received_at, processed_at)
SELECT 'drain:' || g, 'acme', 'inventory_transaction.items_received', 'drain-' || g, 1,
    'accepted', md5(g::text), 'US-NYC-01', now(), now(), convert_to('{}', 'UTF8'),
    'application/json', now(), now()
FROM generate_series(1, %(messages)s) AS g;
INSERT INTO outbox_message (id, event_id, tenant, type, location_id, document, status,
    attempts, next_attempt_at, created_at, updated_at)
SELECT md5('drain' || e.id), e.id, 'acme', 'inventory.receipt', e.location_id,
    %(document)s, 'pending', 0, now(), now(), now()
FROM inbound_event e WHERE e.slot LIKE 'drain:%%';
VACUUM ANALYZE
"""

REQUEUE = """
UPDATE outbox_message SET status = 'pending', attempts = 0, next_attempt_at = now(),
    claimed_by = NULL, claimed_until = NULL, delivered_at = NULL, last_error = NULL,
    last_status_code = NULL;
TRUNCATE sync_attempt;
VACUUM ANALYZE
"""

CHECK = """
SELECT
    (SELECT count(*) FROM outbox_message WHERE status = 'delivered'),
    (SELECT count(*) FROM outbox_message WHERE claimed_by IS NOT NULL),
    (SELECT count(*) FROM sync_attempt),
    (SELECT count(DISTINCT message_id) FROM sync_attempt)
"""


def document() -> str:
    lines = [
        {
            "product_id": f"SKU-{n:06d}",
            "stock_location": "main",
            "quantity_delta": n % 7 + 1,
        }
        for n in range(50)
    ]
    return json.dumps(
        {
            "id": "00000000-0000-0000-0000-000000000000",
            "type": "inventory.receipt",
            "tenant": "acme",
            "location_id": "US-NYC-01",
            "occurred_at": "2026-01-01T00:00:00Z",
            "source": {"event_name": "inventory_transaction.items_received"},
            "references": {},
            "lines": lines,
        },
        separators=(",", ":"),
    )


def execute_all(dsn: str, script: str, params: dict[str, Any] | None = None) -> None:
    for statement in script.split(";"):
        if statement.strip():
            run.sql(dsn, statement, params)


def profile_summary(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """Innermost frames of py-spy's raw output, as % of samples."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        counts[stack.split(";")[-1]] += n
    return [(frame, 100 * n / total) for frame, n in counts.most_common(top)]


def drain_once(
    dsn: str, erp_url: str, out: Path, concurrency: int, timeout: int, profile: bool
) -> dict[str, Any]:
    execute_all(dsn, REQUEUE)
    env = run.product_env(dsn, erp_url)
    env["INVSYNC_ERP_CONCURRENCY"] = str(concurrency)
    env["INVSYNC_LOG_LEVEL"] = os.environ.get("INVSYNC_LOG_LEVEL", "info")
    argv = [str(run.BIN / "inventory-sync"), "worker"]
    raw = out / f"profile-c{concurrency}.txt"
    if profile:
        argv = [
            str(run.BIN / "py-spy"),
            "record",
            "--gil",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(raw),
            "--",
            *argv,
        ]
    run.log(f"drain: concurrency {concurrency}, {run.pending(dsn)} pending")
    uptime = os.getloadavg()
    worker = run.Process(f"worker-c{concurrency}", argv, env, out)
    try:
        result = run.measure_drain(dsn, timeout)
    finally:
        worker.stop()
    delivered, claimed, attempts, attempted = run.sql(dsn, CHECK)[0]
    result.update(
        concurrency=concurrency,
        load_average_before=uptime,
        delivered_rows=delivered,
        claims_left=claimed,
        attempts_logged=attempts,
        messages_with_attempts=attempted,
    )
    run.log(
        f"  {result['documents_s'] or 0:.0f} documents/s "
        f"({result['documents_s_including_startup'] or 0:.0f}/s with start-up); "
        f"delivered {delivered}, attempts {attempts}, claims left {claimed}; "
        f"load {uptime[0]:.2f}"
    )
    if profile and raw.exists():
        result["profile_top"] = profile_summary(raw)
        for frame, share in result["profile_top"]:
            print(f"    {share:5.1f}%  {frame}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeat", type=int, default=1, help="drains per concurrency")
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="py-spy record --gil the worker")
    args = parser.parse_args()
    out = run.BENCH / "results" / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-drain")
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError), socket.create_connection((run.HOST, run.STANDIN_PORT), 0.5):
        sys.exit(f"port {run.STANDIN_PORT} is already in use")
    results: dict[str, Any] = {
        "command": "python bench/drain.py " + " ".join(sys.argv[1:]),
        "machine": run.machine(),
        "messages": args.messages,
        "runs": [],
    }
    standin = None
    dsn = run.recreate_database(DATABASE)
    try:
        subprocess.run(
            [str(run.BIN / "inventory-sync"), "db", "upgrade"],
            env=run.product_env(dsn),
            check=True,
            capture_output=True,
            timeout=120,
        )
        execute_all(dsn, FILL, {"messages": args.messages, "document": document()})
        standin = run.Process(
            "erp-standin",
            [sys.executable, str(run.BENCH / "erp_standin.py"), "--port", str(run.STANDIN_PORT)],
            dict(os.environ),
            out,
        )
        standin.wait_port(run.STANDIN_PORT)
        erp_url = f"http://{run.HOST}:{run.STANDIN_PORT}/erp"
        for concurrency in args.concurrency:
            for _ in range(args.repeat):
                results["runs"].append(
                    drain_once(dsn, erp_url, out, concurrency, args.timeout, args.profile)
                )
    finally:
        if standin is not None:
            standin.stop()
        with contextlib.suppress(Exception):
            run.drop_database(DATABASE)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    run.log(f"done: {out / 'results.json'}")


if __name__ == "__main__":
    main()
