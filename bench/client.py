"""Open-loop load at a fixed rate, recording every answer, in its own process.

Used for the sustained run (p99 at a given rate, no response over 1 s) and for the check that
every acknowledged event is in the database: it writes the payload id of every `accepted` or
`duplicate` answer to a file. Latency is measured from the moment a request was *due*, so a
server that falls behind cannot hide it (no coordinated omission).

    python bench/client.py --url http://127.0.0.1:8100/webhooks/newstore --key K \
        --rate 200 --seconds 60 --items 50 --connections 16 --run-tag s1 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 30.0


def event_body(run_tag: str, n: int, items: int) -> bytes:
    lines = ",".join(
        f'{{"product_id":"SKU-{i:06d}","quantity":{(i % 7) + 1}}}' for i in range(1, items + 1)
    )
    return (
        '{"tenant":"acme","name":"inventory_transaction.items_received",'
        '"published_at":"2024-05-14T09:32:18.402Z","payload":{"id":"'
        f'{run_tag}-{n}","fulfillment_location_id":"US-NYC-01",'
        f'"processed_at":"2024-05-14T09:31:55.117Z","items":[{lines}]}}}}'
    ).encode()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {args.key}\r\n"
        "Content-Length: "
    ).encode()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        idle.put_nowait(Connection(*await asyncio.open_connection(host, port)))

    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (when due, seconds since start; latency)
    acked: list[str] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []

    async def one(n: int, due: float) -> None:
        payload_id = f"{args.run_tag}-{n}"
        body = event_body(args.run_tag, n, args.items)
        conn = await idle.get()
        try:
            status, answer = await asyncio.wait_for(conn.post(head, body), TIMEOUT_SECONDS)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            errors.append(f"{type(error).__name__}: {error}"[:200])
            conn.writer.close()
            idle.put_nowait(Connection(*await asyncio.open_connection(host, port)))
            return
        idle.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        timeline.append((due - start, latencies[-1]))
        if status != 200:
            errors.append(f"HTTP {status}")
            return
        outcome = json.loads(answer).get("status", "?")
        statuses[outcome] = statuses.get(outcome, 0) + 1
        if outcome in ("accepted", "duplicate"):
            acked.append(payload_id)

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    started_at = time.time()
    total = int(args.rate * args.seconds)
    for n in range(1, total + 1):
        due = start + (n - 1) / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(n, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=TIMEOUT_SECONDS + 5)
    elapsed = time.perf_counter() - start
    latencies.sort()
    # When the slow answers were due, and the worst answer of each second: shows whether slow
    # answers are spread out or come in stalls.
    slowest = sorted(timeline, key=lambda entry: entry[1], reverse=True)[:20]
    worst_per_second: dict[int, float] = {}
    for due_at, latency in timeline:
        second = int(due_at)
        worst_per_second[second] = max(worst_per_second.get(second, 0.0), latency)

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "started_at": started_at,
        "sent": total,
        "answered": len(latencies),
        "elapsed_s": elapsed,
        "rate_target": args.rate,
        "rate_achieved": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "over_1s": sum(1 for value in latencies if value > 1.0),
        "slowest": [(round(due_at, 2), round(latency * 1000, 1)) for due_at, latency in slowest],
        "worst_ms_per_second": [
            round(worst_per_second.get(second, 0.0) * 1000, 1)
            for second in range(int(args.seconds) + 1)
        ],
        "statuses": statuses,
        "errors": len(errors),
        "error_samples": errors[:5],
        "acked_ids": acked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--run-tag", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    with open(args.out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
