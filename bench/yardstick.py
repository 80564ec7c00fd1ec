"""The fastest minimal correct intake on this stack: the yardstick the product is measured by.

It stores what the product's contract says intake must store for the benchmark's bodies
(`inventory_transaction.items_received`), so that every field the ops API returns can be read
back, and nothing else, the fastest way measured on this machine (docs/performance.md, "The
yardstick"):

- a raw ASGI endpoint under uvicorn with uvloop and httptools, one process;
- the bearer key compared in constant time, a JSON media type, the body bounded in size;
- the envelope and payload validated with pydantic straight from the bytes (text ids, whole
  non-negative quantities), anything else quarantined with its raw body;
- one statement, atomic by itself: the raw event `INSERT ... ON CONFLICT DO NOTHING` on its
  dedupe key, one ledger row per item with every field of a movement, and the ERP document in
  the outbox; answered after the commit;
- a body whose key is taken is a duplicate when its payload equals the stored one, else it is
  quarantined.

No index beyond the keys, no metrics, no logging. `POST /noop` reads the body and answers at
once: the HTTP floor of the same server.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/invsync_bench_yardstick \
        python bench/yardstick.py --port 8102
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import orjson
import uvicorn
from pydantic import BaseModel, Field, StrictInt, ValidationError

KEY = os.environ.get("BENCH_WEBHOOK_KEY", "bench-webhook-key").encode()
MAX_BODY = 10 * 1024 * 1024
POOL_SIZE = 8
SPAN = 2**21  # a ledger row's id: event id * SPAN + 2 * line number (no sequence)

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_event (
    id bigserial PRIMARY KEY,
    slot bytea NOT NULL UNIQUE,
    tenant text,
    name text,
    payload_id text,
    chunk_number integer,
    status text NOT NULL,
    body_sha256 bytea NOT NULL,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ledger_row (
    id bigint PRIMARY KEY,
    event_id bigint NOT NULL,
    tenant text NOT NULL,
    location_id text NOT NULL,
    stock_location text NOT NULL,
    product_id text NOT NULL,
    quantity bigint NOT NULL,
    kind text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    line_number integer NOT NULL,
    "references" json NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id uuid PRIMARY KEY,
    event_id bigint NOT NULL,
    document text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    next_attempt_at timestamptz NOT NULL DEFAULT now()
);
"""
# Not the yardstick's: with `--position-index`, the one index the product's read side needs
# (stock, count drift and product history by position), keyed as the product keys it. The
# report runs that variant beside the yardstick to show what the index alone costs.
POSITION_INDEX = """
CREATE INDEX IF NOT EXISTS ledger_row_position ON ledger_row (product_id COLLATE "C",
    location_id COLLATE "C", stock_location COLLATE "C", tenant COLLATE "C", occurred_at)
"""
# Measured faster than the default pglz for bodies and documents; ignored where unsupported.
LZ4 = """
DO $$ BEGIN
    ALTER TABLE raw_event ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN document SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN NULL;
END $$
"""

WRITE = """
WITH ev AS (
    INSERT INTO raw_event (slot, tenant, name, payload_id, chunk_number, status, body_sha256,
        body)
    VALUES ($1, $2, $3, $4, $5, 'accepted', $6, $7)
    ON CONFLICT (slot) DO NOTHING RETURNING id
), rows AS (
    INSERT INTO ledger_row (id, event_id, tenant, location_id, stock_location, product_id,
        quantity, kind, occurred_at, line_number, "references")
    SELECT ev.id * $8 + 2 * t.n, ev.id, $2, $9, 'main', t.p, t.q, 'receipt',
        $10::timestamptz, t.n, $11::json
    FROM ev, unnest($12::text[], $13::bigint[]) WITH ORDINALITY AS t (p, q, n)
), doc AS (
    INSERT INTO outbox (id, event_id, document) SELECT $14, ev.id, $15 FROM ev
)
SELECT id, NULL::bytea FROM ev
UNION ALL
SELECT id, body_sha256 FROM raw_event WHERE slot = $1 AND NOT EXISTS (SELECT FROM ev)
"""

QUARANTINE = """
INSERT INTO raw_event (slot, status, body_sha256, body) VALUES ($1, 'quarantined', $1, $2)
ON CONFLICT (slot) DO UPDATE SET status = 'quarantined' RETURNING id
"""

Text = Annotated[str, Field(min_length=1, max_length=1000)]
Quantity = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]


class Line(BaseModel):
    product_id: Text
    quantity: Quantity


class Payload(BaseModel):
    id: Text
    chunk_number: Annotated[StrictInt, Field(ge=1)] = 1
    total_chunks: Annotated[StrictInt, Field(ge=1)] | None = None
    fulfillment_location_id: Text
    processed_at: datetime
    asn_id: Text | None = None
    order_ref: Text | None = None
    shipment_ref: Text | None = None
    items: list[Line]


class Envelope(BaseModel):
    tenant: Text
    name: Text
    published_at: datetime | None = None
    payload: Payload


NAMESPACE = uuid.UUID("8c1f2a3e-6b7d-4e5f-9a0b-1c2d3e4f5a6b")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def document(message_id: str, envelope: Envelope, references: dict[str, str]) -> str:
    payload = envelope.payload
    return orjson.dumps(
        {
            "id": message_id,
            "type": "inventory.receipt",
            "tenant": envelope.tenant,
            "location_id": payload.fulfillment_location_id,
            "occurred_at": iso(payload.processed_at),
            "source": {
                "event_name": envelope.name,
                "event_id": payload.id,
                "chunk_number": payload.chunk_number,
                "total_chunks": payload.total_chunks,
                "published_at": iso(envelope.published_at),
            },
            "references": references,
            "lines": [
                {"product_id": i.product_id, "stock_location": "main", "quantity_delta": i.quantity}
                for i in payload.items
            ],
        }
    ).decode()


def payload_of(body: bytes) -> Any:
    return orjson.loads(body)["payload"]


async def respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def answer(status: str, event_id: int | None) -> bytes:
    return orjson.dumps({"status": status, "event_id": event_id, "detail": None})


async def read_body(receive: Any) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def keep(_connection: asyncpg.Connection) -> None:
    """No session state to reset: single statements, no SET, LISTEN or locks."""


class Yardstick:
    def __init__(self, dsn: str, pool_size: int, position_index: bool = False) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.position_index = position_index
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        headers = dict(scope["headers"])
        body = await read_body(receive)
        if scope["path"] == "/noop":
            await respond(send, 200, answer("ok", None))
            return
        if not hmac.compare_digest(headers.get(b"authorization", b""), b"Bearer " + KEY):
            await respond(send, 401, b'{"detail":"unauthorized"}')
            return
        if not headers.get(b"content-type", b"application/json").startswith(b"application/json"):
            await respond(send, 415, b'{"detail":"not JSON"}')
            return
        if body is None:
            await respond(send, 413, b'{"detail":"too large"}')
            return
        status, event_id = await self.intake(body)
        await respond(send, 200, answer(status, event_id))

    async def intake(self, body: bytes) -> tuple[str, int]:
        assert self.pool is not None
        digest = hashlib.sha256(body).digest()
        try:
            envelope = Envelope.model_validate_json(body)
        except ValidationError:
            return "quarantined", await self.pool.fetchval(QUARANTINE, digest, body)
        payload = envelope.payload
        key = json.dumps([envelope.tenant, envelope.name, payload.id, payload.chunk_number])
        slot = hashlib.sha256(key.encode()).digest()
        message_id = uuid.uuid5(NAMESPACE, key)
        references = {
            k: v
            for k, v in (
                ("asn_id", payload.asn_id),
                ("order_ref", payload.order_ref),
                ("shipment_ref", payload.shipment_ref),
            )
            if v is not None
        }
        row = await self.pool.fetchrow(
            WRITE,
            slot,
            envelope.tenant,
            envelope.name,
            payload.id,
            payload.chunk_number,
            digest,
            body,
            SPAN,
            payload.fulfillment_location_id,
            payload.processed_at,
            json.dumps(references),
            [i.product_id for i in payload.items],
            [i.quantity for i in payload.items],
            message_id,
            document(str(message_id), envelope, references),
        )
        if row is not None and row[1] is None:
            return "accepted", row[0]
        if row is not None and row[1] == digest:
            return "duplicate", row[0]
        return await self.taken(slot, body)

    async def taken(self, slot: bytes, body: bytes) -> tuple[str, int]:
        """The key is taken by other bytes: a duplicate if the payloads are equal."""
        assert self.pool is not None
        holder, stored = await self.pool.fetchrow(
            "SELECT id, body FROM raw_event WHERE slot = $1", slot
        )
        if payload_of(stored) == payload_of(body):
            return "duplicate", holder
        return "quarantined", await self.pool.fetchval(
            QUARANTINE, hashlib.sha256(body).digest(), body
        )

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.pool = await asyncpg.create_pool(
                    self.dsn, min_size=self.pool_size, max_size=self.pool_size, reset=keep
                )
                await self.pool.execute(SCHEMA)
                await self.pool.execute(LZ4)
                if self.position_index:
                    await self.pool.execute(POSITION_INDEX)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--pool", type=int, default=POOL_SIZE, help="database connections")
    parser.add_argument(
        "--position-index", action="store_true", help="add the product's position index"
    )
    args = parser.parse_args()
    uvicorn.run(
        Yardstick(os.environ["BENCH_DATABASE_URL"], args.pool, args.position_index),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
