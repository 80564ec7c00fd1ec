"""ErpClient against real local servers that answer with raw bytes: keep-alive, framings,
connections the ERP closes, long and trickled answers, and a proxy from the environment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from inventory_sync.erp_sync.client import ErpClient, Outcome, Result
from tests.erp_sync.conftest import run

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Seen:
    """Per request: the number of the connection it came on, and its request line."""

    connections: list[int] = field(default_factory=list)
    request_lines: list[bytes] = field(default_factory=list)


# What to do with the n-th request (1-based) arriving as the k-th on its connection: the
# bytes to write (None: close without answering) and whether to close after writing.
Answer = Callable[[int, int], tuple[bytes | None, bool]]


async def _serve(answer: Answer, seen: Seen, *, trickle: bytes = b"") -> asyncio.Server:
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        me, on_this = count, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                on_this += 1
                seen.connections.append(me)
                seen.request_lines.append(head.split(b"\r\n", 1)[0])
                raw, close = answer(len(seen.connections), on_this)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                for byte in trickle:  # then these, one every 50 ms
                    await asyncio.sleep(0.05)
                    writer.write(bytes([byte]))
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _send_all(
    answer: Answer,
    times: int,
    *,
    url: str = "http://127.0.0.1:{port}/erp",
    timeout: float = 2,
    trickle: bytes = b"",
) -> tuple[list[Result], Seen]:
    async def go() -> tuple[list[Result], Seen]:
        seen = Seen()
        server = await _serve(answer, seen, trickle=trickle)
        port = server.sockets[0].getsockname()[1]
        results = []
        async with server:
            async with ErpClient(url.format(port=port), timeout_seconds=timeout) as client:
                for n in range(times):
                    results.append(await client.send(f"m{n}", '{"a":1}'))
            server.close()
        return results, seen

    result: tuple[list[Result], Seen] = run(go())
    return result


class TestConnections:
    def test_kept_alive_connection_is_reused(self) -> None:
        results, seen = _send_all(lambda _n, _k: (OK, False), 3)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert seen.connections == [1, 1, 1]
        assert seen.request_lines == [b"POST /erp HTTP/1.1"] * 3

    def test_connections_the_erp_closes_after_answering_are_replaced(self) -> None:
        # Keep-alive promised (HTTP/1.1, no "Connection: close"), then closed anyway.
        results, seen = _send_all(lambda _n, _k: (OK, True), 3)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert seen.connections == [1, 2, 3]

    def test_idle_connection_closed_as_the_request_arrives_is_sent_again_once(self) -> None:
        # The second request on a connection finds it closed without an answer: it goes out
        # again at once on a new connection (the Idempotency-Key makes the repeat harmless).
        results, seen = _send_all(lambda _n, k: (OK, False) if k == 1 else (None, True), 3)
        assert [r.outcome for r in results] == [Outcome.DELIVERED] * 3
        assert seen.connections == [1, 1, 2, 2, 3]

    def test_a_second_disconnect_is_a_connection_error(self) -> None:
        results, seen = _send_all(lambda _n, _k: (None, True), 1)
        assert results[0].outcome is Outcome.RETRY
        assert results[0].error is not None
        assert results[0].error.startswith("connection error")
        assert seen.connections == [1, 2]

    def test_garbage_is_a_connection_error(self) -> None:
        results, _ = _send_all(lambda _n, _k: (b"SSH-2.0-OpenSSH\r\n\r\n", True), 1)
        assert results[0].outcome is Outcome.RETRY
        assert results[0].status_code is None
        assert results[0].error is not None
        assert results[0].error.startswith("connection error")


class TestAnswers:
    def test_chunked_error_body_and_retry_after(self) -> None:
        answer = (
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
            b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        results, seen = _send_all(lambda _n, _k: (answer, False), 2)
        assert results[0].outcome is Outcome.RETRY
        assert results[0].status_code == 503
        assert results[0].error == "HTTP 503: hello world"
        assert results[0].retry_after == 7.0
        assert seen.connections == [1, 1]

    def test_close_delimited_http10_answer(self) -> None:
        answer = b"HTTP/1.0 404 Not Found\r\n\r\nno such location"
        results, seen = _send_all(lambda _n, _k: (answer, True), 2)
        assert [r.outcome for r in results] == [Outcome.DEAD] * 2
        assert results[0].error == "HTTP 404: no such location"
        assert seen.connections == [1, 2]

    def test_only_the_start_of_a_long_body_is_kept(self) -> None:
        body = b"x" * 1_000_000
        answer = (
            b"HTTP/1.1 422 Unprocessable\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        results, _ = _send_all(lambda _n, _k: (answer, False), 2)
        assert [r.status_code for r in results] == [422, 422]
        assert results[0].outcome is Outcome.DEAD
        assert results[0].error == "HTTP 422: " + "x" * 500

    def test_a_trickled_answer_is_cut_off_at_the_timeout(self) -> None:
        # The header arrives at once, the body a byte every 50 ms: the bound covers reading
        # the answer, not only waiting for it.
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
        results, _ = _send_all(lambda _n, _k: (answer, False), 1, timeout=1.0, trickle=b"x" * 40)
        assert results[0].outcome is Outcome.RETRY
        assert results[0].error is not None
        assert results[0].error.startswith("timeout")
        assert 950 <= results[0].duration_ms < 2000


class TestProxy:
    def test_proxy_from_the_environment_is_used(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def go() -> tuple[Result, Seen]:
            seen = Seen()
            server = await _serve(lambda _n, _k: (OK, False), seen)
            port = server.sockets[0].getsockname()[1]
            for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
            monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
            async with server:
                async with ErpClient("http://erp.invalid/erp", timeout_seconds=2) as client:
                    result = await client.send("m1", "{}")
                server.close()
            return result, seen

        result, seen = run(go())
        assert result.outcome is Outcome.DELIVERED
        assert seen.request_lines == [b"POST http://erp.invalid/erp HTTP/1.1"]


class TestSettings:
    @pytest.mark.parametrize("url", ["ftp://erp/x", "erp.example.com/x", "http:///x"])
    def test_url_must_be_http(self, url: str) -> None:
        with pytest.raises(ValueError, match="INVSYNC_ERP_URL"):
            ErpClient(url, timeout_seconds=1)

    def test_authorization_must_be_one_line(self) -> None:
        with pytest.raises(ValueError, match="INVSYNC_ERP_AUTHORIZATION"):
            ErpClient("http://erp/x", timeout_seconds=1, authorization="a\r\nX-Evil: 1")
