"""What one full page of `/v1/ledger` (1,000 movements) costs to answer, in process.

Stores one receipt of 1,000 lines, then times `GET /v1/ledger?limit=1000` through the real app
(FastAPI's test client, no network) on SQLite and on PostgreSQL, and prints the median and the
90th percentile. The query is the same for every run, so differences between two versions of
the code are the answer's building: validation against the response model and JSON encoding.

    .venv/bin/python bench/listing.py [--requests 200]

PostgreSQL: `BENCH_POSTGRES_URL` (default `postgresql://postgres@127.0.0.1:5432/test`) is used
to create and finally drop `invsync_bench_listing`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from inventory_sync.storage import migrate
from inventory_sync.storage.store import open_database

KEY, TOKEN = "bench-webhook-key", "bench-read-token"
ROWS = 1000
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE = "invsync_bench_listing"


def receipt() -> dict[str, object]:
    return {
        "tenant": "acme",
        "name": "inventory_transaction.items_received",
        "published_at": "2024-05-14T09:32:18.402Z",
        "payload": {
            "id": str(uuid.uuid4()),
            "fulfillment_location_id": "US-NYC-01",
            "processed_at": "2024-05-14T09:31:55.117Z",
            "asn_id": "ASN-1",
            "items": [{"product_id": f"SKU-{n:05}", "quantity": n % 7 + 1} for n in range(ROWS)],
        },
    }


def measure(url: str, requests: int) -> tuple[list[float], list[float]]:
    db = open_database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    settings = Settings(
        database_url=url, webhook_keys=[KEY], ops_tokens=[TOKEN], log_level="warning"
    )
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/webhooks/newstore", json=receipt(), headers={"Authorization": f"Bearer {KEY}"}
        )
        assert answer.json()["status"] == "accepted", answer.text
        headers = {"Authorization": f"Bearer {TOKEN}"}
        wall, cpu = [], []
        for n in range(requests + 20):
            started, used = time.perf_counter(), time.process_time()
            page = client.get("/v1/ledger", params={"limit": ROWS}, headers=headers)
            elapsed, spent = time.perf_counter() - started, time.process_time() - used
            assert page.status_code == 200, page.text[:200]
            assert len(page.json()["items"]) == ROWS
            if n >= 20:  # warm-up: connections, caches
                wall.append(elapsed * 1000)
                cpu.append(spent * 1000)
    return wall, cpu


def report(label: str, timings: tuple[list[float], list[float]]) -> None:
    for kind, values in zip(("wall", "cpu"), timings, strict=True):
        cuts = statistics.quantiles(values, n=10)
        print(
            f"{label:<10} {kind:<4} median {statistics.median(values):6.1f} ms"
            f"   p90 {cuts[-1]:6.1f} ms   ({len(values)} requests)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report("sqlite", measure(f"sqlite:///{Path(folder) / 'listing.db'}", args.requests))
    base, _, _ = POSTGRES.rpartition("/")
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        report("postgres", measure(f"{base}/{DATABASE}", args.requests))
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


if __name__ == "__main__":
    main()
