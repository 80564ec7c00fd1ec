"""The irreducible work of webhook intake, as a yardstick for the product.

For the same NewStore bodies the product receives: parse the envelope with pydantic, insert the
raw event with `ON CONFLICT DO NOTHING` on the dedupe key, bulk-insert one ledger row per item,
all in one transaction, and answer after the commit. Nothing else: no authentication, no content
hash, no outbox, no secondary indexes, no logging. `POST /noop` reads the body and answers at
once: the HTTP floor of FastAPI + uvicorn on this machine.

Same driver (psycopg 3), server (uvicorn, one process), connection count (16) and thread
limiter as the product, so the ratio product / baseline measures the product's own overhead.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/invsync_bench_baseline \
        python bench/baseline.py --port 8101
"""

from __future__ import annotations

import argparse
import os
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime

import anyio
import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

POOL_SIZE = 16  # the product's INTAKE_THREADS and SQLAlchemy pool_size

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_event (
    id bigserial PRIMARY KEY,
    tenant text NOT NULL,
    name text NOT NULL,
    payload_id text NOT NULL,
    chunk_number integer NOT NULL,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name, payload_id, chunk_number)
);
CREATE TABLE IF NOT EXISTS ledger_row (
    id bigserial PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES raw_event (id),
    tenant text NOT NULL,
    location_id text NOT NULL,
    product_id text NOT NULL,
    quantity bigint NOT NULL,
    occurred_at timestamptz
);
"""

INSERT_EVENT = """
INSERT INTO raw_event (tenant, name, payload_id, chunk_number, body)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (tenant, name, payload_id, chunk_number) DO NOTHING
RETURNING id
"""

INSERT_LEDGER = """
INSERT INTO ledger_row (event_id, tenant, location_id, product_id, quantity, occurred_at)
SELECT %s, %s, %s, p, q, %s FROM unnest(%s::text[], %s::bigint[]) AS t (p, q)
"""


class Item(BaseModel):
    product_id: str
    quantity: int


class Payload(BaseModel):
    id: str
    chunk_number: int = 1
    fulfillment_location_id: str
    processed_at: datetime | None = None
    items: list[Item]


class Envelope(BaseModel):
    tenant: str
    name: str
    published_at: datetime | None = None
    payload: Payload


class Pool:
    """At most `size` psycopg connections, handed out to one thread at a time."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._idle: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
        self.limiter = anyio.CapacityLimiter(size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self._dsn, autocommit=True)
        try:
            yield conn
        finally:
            if not conn.closed:
                self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def store(pool: Pool, envelope: Envelope, body: bytes) -> tuple[str, int | None]:
    payload = envelope.payload
    with pool.connection() as conn, conn.transaction():
        row = conn.execute(
            INSERT_EVENT,
            (envelope.tenant, envelope.name, payload.id, payload.chunk_number, body),
        ).fetchone()
        if row is None:
            return "duplicate", None
        event_id = int(row[0])
        conn.execute(
            INSERT_LEDGER,
            (
                event_id,
                envelope.tenant,
                payload.fulfillment_location_id,
                payload.processed_at,
                [item.product_id for item in payload.items],
                [item.quantity for item in payload.items],
            ),
        )
    return "accepted", event_id


def create_app(dsn: str) -> FastAPI:
    pool = Pool(dsn, POOL_SIZE)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/noop")
    async def noop(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "ok", "event_id": None, "detail": None})

    @app.post("/webhooks/newstore")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        envelope = Envelope.model_validate_json(body)
        status, event_id = await anyio.to_thread.run_sync(
            store, pool, envelope, body, limiter=pool.limiter
        )
        return JSONResponse({"status": status, "event_id": event_id, "detail": None})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    dsn = os.environ["BENCH_DATABASE_URL"]
    uvicorn.run(
        create_app(dsn),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
