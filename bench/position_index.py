"""What an index for position queries costs PostgreSQL per event, by kind of index and of keys.

    .venv/bin/python bench/position_index.py                   # 600 events of 500 rows
    .venv/bin/python bench/position_index.py --rows 50 --events 3000

Creates `invsync_bench_index` (dropped at the end). For each kind of index (none; the product's
B-tree on product, location, stock location, tenant and time; GIN on product and on product
and location, with `btree_gin` where the server has it) and each kind of keys, inserts
`--events` events of `--rows` ledger rows, `--concurrency` at a time, each one statement as
intake writes them (`INSERT ... SELECT ... FROM unnest`), into a table of the ledger's
position columns, and records the CPU time of every PostgreSQL process per event. Keys are
either `bench` (the bodies `bench/newstore.lua` posts: the same products at one store, one
time) or `spread` (each row a product drawn from 100,000, each event one of 200 stores and
its own time), which is closer to a retailer's traffic. Server only: no HTTP, no Python
beyond sending the statement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

DATABASE = "invsync_bench_index"

TABLE = """
DROP TABLE IF EXISTS ledger;
CREATE TABLE ledger (
    id bigint PRIMARY KEY,
    event_id bigint NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    location_id text COLLATE "C" NOT NULL,
    stock_location text COLLATE "C" NOT NULL,
    product_id text COLLATE "C" NOT NULL,
    quantity bigint NOT NULL,
    occurred_at timestamptz NOT NULL
)
"""

INDEXES = {
    "none": None,
    "btree (the product's)": "CREATE INDEX ON ledger "
    "(product_id, location_id, stock_location, tenant, occurred_at)",
    "gin (product)": "CREATE INDEX ON ledger USING gin (product_id)",
    "gin (product, location)": "CREATE INDEX ON ledger USING gin (product_id, location_id)",
}

INSERT = """
INSERT INTO ledger
SELECT $1::bigint * 1000000 + i, $1, 'acme', $2, 'main', p, 1, $3
FROM unnest($4::text[]) WITH ORDINALITY AS u (p, i)
"""


def postgres_cpu_ticks() -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not (entry / "cmdline").read_bytes().startswith(b"postgres"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


async def measure(
    dsn: str, index: str | None, spread: bool, rows: int, events: int, concurrency: int
) -> float:
    """PostgreSQL's CPU µs per event."""
    connection = await asyncpg.connect(dsn)
    await connection.execute(TABLE)
    if index is not None:
        await connection.execute(index)
    await connection.close()
    chooser = random.Random(1)
    stores = [f"US-{n:04d}" for n in range(200)]
    bench_products = [f"SKU-{n:06d}" for n in range(1, rows + 1)]
    bench_time = datetime(2024, 5, 14, 9, 31, 55, tzinfo=UTC)
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    limit = asyncio.Semaphore(concurrency)

    async def one(event: int) -> None:
        if spread:
            products = [f"SKU-{chooser.randrange(100_000):06d}" for _ in range(rows)]
            store, when = chooser.choice(stores), datetime.now(UTC)
        else:
            products, store, when = bench_products, "US-NYC-01", bench_time
        async with limit:
            await pool.execute(INSERT, event, store, when, products)

    before = postgres_cpu_ticks()
    await asyncio.gather(*(one(event) for event in range(events)))
    spent = postgres_cpu_ticks() - before
    await pool.close()
    return spent * 1e6 / 100 / events  # clock ticks are 1/100 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="ledger rows per event")
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    dsn = run.recreate_database(DATABASE)
    try:
        has_gin = asyncio.run(_create_btree_gin(dsn))
        print(f"PostgreSQL CPU per event of {args.rows} rows, µs ({args.events} events, "
              f"{args.concurrency} at a time; each figure one run)")  # fmt: skip
        print("| index | bench keys | spread keys |\n|---|---|---|")
        for name, index in INDEXES.items():
            if name.startswith("gin") and not has_gin:
                continue
            figures = {
                spread: [
                    asyncio.run(
                        measure(dsn, index, spread, args.rows, args.events, args.concurrency)
                    )
                    for _ in range(args.repeat)
                ]
                for spread in (False, True)
            }
            cells = [", ".join(f"{value:,.0f}" for value in figures[s]) for s in (False, True)]
            print(f"| {name} | {cells[0]} | {cells[1]} |", flush=True)
    finally:
        run.drop_database(DATABASE)


async def _create_btree_gin(dsn: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        return True
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
