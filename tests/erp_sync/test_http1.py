"""The worker's own HTTP/1.1 client against raw sockets: framings, keep-alive, closed idle
connections, and the lease check on queued claims."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from inventory_sync.db import utcnow
from inventory_sync.erp_sync import outbox
from inventory_sync.erp_sync.client import ErpClient, Outcome, Result
from inventory_sync.erp_sync.worker import Worker, send_bound
from inventory_sync.settings import Settings
from tests.erp_sync.conftest import erp_settings, run

Answer = Callable[[int], bytes]


async def _serve(answer: Answer, *, close_after: bool = False) -> tuple[asyncio.Server, list[int]]:
    """A server that reads each request and writes `answer(n)`; returns it and, per request,
    the number of the connection it came on."""
    connections: list[int] = []
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        me = count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                connections.append(me)
                writer.write(answer(len(connections)))
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


async def _send_all(answer: Answer, times: int, **options: bool) -> tuple[list[Result], list[int]]:
    server, connections = await _serve(answer, **options)
    port = server.sockets[0].getsockname()[1]
    results = []
    async with server, ErpClient(f"http://127.0.0.1:{port}/erp", timeout_seconds=2) as client:
        for n in range(times):
            results.append(await client.send(f"m{n}", '{"a":1}'))
    return results, connections


def _check(coroutine: Awaitable[tuple[list[Result], list[int]]]) -> tuple[list[Result], list[int]]:
    result: tuple[list[Result], list[int]] = run(coroutine)
    return result


class TestHttp1:
    def test_content_length_answers_reuse_one_connection(self) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        results, connections = _check(_send_all(lambda _: answer, 3))
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert connections == [1, 1, 1]

    def test_chunked_error_body_and_retry_after(self) -> None:
        answer = (
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
            b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
        )
        results, connections = _check(_send_all(lambda _: answer, 2))
        assert results[0].outcome is Outcome.RETRY
        assert results[0].status_code == 503
        assert results[0].error == "HTTP 503: hello world"
        assert results[0].retry_after == 7.0
        assert connections == [1, 1]

    def test_close_delimited_and_http10_answers_use_new_connections(self) -> None:
        answer = b"HTTP/1.0 404 Not Found\r\n\r\nno such location"
        results, connections = _check(_send_all(lambda _: answer, 2, close_after=True))
        assert [r.outcome for r in results] == [Outcome.DEAD] * 2
        assert results[0].error == "HTTP 404: no such location"
        assert connections == [1, 2]

    def test_idle_connection_closed_by_the_erp_is_replaced(self) -> None:
        # Keep-alive promised, but the server closes after each answer: the next request
        # meets a closed connection and goes out again on a new one, once.
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        results, connections = _check(_send_all(lambda _: answer, 3, close_after=True))
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert connections == [1, 2, 3]

    def test_long_body_is_cut_and_informational_answers_skipped(self) -> None:
        body = b"x" * 100_000
        answer = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            + b"HTTP/1.1 422 Unprocessable\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        results, connections = _check(_send_all(lambda _: answer, 2))
        assert results[0].status_code == 422
        assert results[0].error == "HTTP 422: " + "x" * 500
        assert connections == [1, 2]  # not read to the end: not reused

    def test_garbage_is_a_connection_error(self) -> None:
        results, _ = _check(_send_all(lambda _: b"SSH-2.0-OpenSSH\r\n\r\n", 1))
        assert results[0].outcome is Outcome.RETRY
        assert results[0].error is not None
        assert results[0].error.startswith("connection error: not an HTTP/1.x status line")


class TestQueuedLease:
    def test_send_bound_leaves_room_for_the_request_and_the_record(self) -> None:
        assert send_bound(30, 10) == 20  # the default lease: 2 x timeout + 10
        assert send_bound(5, 2) == 3.5
        assert send_bound(5, 5) == 2.5  # no room beyond the request bound (tests only)

    def test_a_claim_near_the_end_of_its_lease_is_not_sent(self, settings: Settings) -> None:
        worker = Worker(erp_settings(settings, "http://127.0.0.1:9/erp"), None, lease_seconds=5)  # type: ignore[arg-type]
        now = utcnow()

        def claim(name: str, seconds_left: float) -> outbox.Claim:
            return outbox.Claim(name, "{}", 0, now, now + timedelta(seconds=seconds_left))

        worker._queue.extend([(claim("late", 3.0), False), (claim("fresh", 4.9), False)])
        item = worker._next()
        assert item is not None
        assert item[0].id == "fresh"
        assert not worker._queue
