"""The server `serve` runs, against clients that send too much head, send slowly, or hold
connections: tried on the real process over raw sockets, as such a client would.

The limits are set small through the environment so that each case takes a second or two.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import factories
from tests.reliability import harness as h

HEADER_TIMEOUT, BODY_TIMEOUT, KEEPALIVE = 1.0, 1.5, 3.0
MAX_CONNECTIONS, MAX_HEADER_BYTES = 20, 8192


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.Api]:
    workdir = tmp_path_factory.mktemp("limits")
    server = h.Api(
        h.fresh_sqlite(workdir),
        workdir,
        INVSYNC_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        INVSYNC_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        INVSYNC_KEEPALIVE_SECONDS=str(KEEPALIVE),
        INVSYNC_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        INVSYNC_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
    )
    server.start()
    yield server
    server.stop()


def connect(api: h.Api) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def one_response(sock: socket.socket) -> bytes:
    """One whole response on a connection kept open: its head, then Content-Length bytes."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.startswith(b"content-length:")).split(
            b":"
        )[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return received


def status(received: bytes) -> int | None:
    return int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else None


def healthz(api: h.Api) -> float:
    """How long `/healthz` took for a client that sends its request as soon as it connects."""
    started = time.monotonic()
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status(answer(sock)) == 200
    return time.monotonic() - started


def test_a_head_over_the_limit_is_431_and_the_service_stays_responsive(api: h.Api) -> None:
    with connect(api) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            # The 8-million-header request of the report, cut short by the server's close.
            for _ in range(1000):
                sock.sendall(b"X-h: v\r\n" * 8192)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = answer(sock)
    assert status(received) == 431
    assert b"connection: close" in received
    assert healthz(api) < 2


def test_a_long_url_counts_as_head(api: h.Api) -> None:
    with connect(api) as sock:
        sock.sendall(b"GET /" + b"a" * (MAX_HEADER_BYTES * 2) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status(answer(sock)) == 431


def test_a_whole_large_head_in_one_packet_with_its_body_is_431(api: h.Api) -> None:
    head = b"POST /webhooks/newstore HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n"
    filler = b"X-f: " + b"v" * MAX_HEADER_BYTES + b"\r\n\r\n"
    with connect(api) as sock:
        try:
            sock.sendall(head + filler + b"{" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = answer(sock)
    assert status(received) == 431
    assert received.count(b"HTTP/1.1") == 1


def test_a_head_just_under_the_limit_is_served(api: h.Api) -> None:
    filler = b"X-f: " + b"v" * (MAX_HEADER_BYTES - 200) + b"\r\n"
    with connect(api) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + filler + b"\r\n"
        )
        assert status(answer(sock)) == 200


def test_a_slow_head_is_408_in_time(api: h.Api) -> None:
    with connect(api) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        received = answer(sock)
        elapsed = time.monotonic() - started
    assert status(received) == 408
    assert HEADER_TIMEOUT - 0.1 < elapsed < HEADER_TIMEOUT + 2


def test_a_head_trickled_byte_by_byte_is_cut_at_the_same_deadline(api: h.Api) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"v" * 100
    with connect(api) as sock:
        started = time.monotonic()
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)  # each byte well within any idle timeout
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = answer(sock)
        elapsed = time.monotonic() - started
    assert status(received) == 408
    assert elapsed < HEADER_TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(api: h.Api) -> None:
    with connect(api) as sock:
        started = time.monotonic()
        assert answer(sock) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT + 2


def test_a_trickled_body_is_408_and_nothing_is_stored(api: h.Api) -> None:
    body = factories.received(("SLOW", 1))
    data = httpx.Request("POST", "http://x", json=body).content
    head = (
        b"POST /webhooks/newstore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + h.WEBHOOK_KEY.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(data)
    )
    with connect(api) as sock:
        started = time.monotonic()
        sock.sendall(head)
        try:
            for byte in data[:-1]:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = answer(sock)
        elapsed = time.monotonic() - started
    assert status(received) == 408
    assert elapsed < BODY_TIMEOUT + 2
    events = httpx.get(
        f"{api.url}/v1/events", headers={"Authorization": f"Bearer {h.READ_TOKEN}"}, timeout=5
    )
    assert events.json()["items"] == []
    # A client that goes away is no error of the service's.
    time.sleep(0.2)
    assert '"level": "error"' not in api.log.read_text()


def test_a_client_that_hangs_up_mid_body_is_no_error(api: h.Api) -> None:
    head = (
        b"POST /webhooks/newstore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + h.WEBHOOK_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    with connect(api) as sock:
        sock.sendall(head)
        time.sleep(0.2)
    time.sleep(0.3)
    assert healthz(api) < 2
    assert '"level": "error"' not in api.log.read_text()


def test_a_kept_alive_connection_outlives_the_header_timeout(api: h.Api) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(api) as sock:
        sock.sendall(request)
        assert status(one_response(sock)) == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle longer than a head may take, within keep-alive
        sock.sendall(request)
        assert status(one_response(sock)) == 200


def test_beyond_the_limit_the_connection_idle_longest_makes_room(api: h.Api) -> None:
    held = [connect(api) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with connect(api) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status(answer(sock)) == 200
        held[0].settimeout(2)
        assert answer(held[0]) == b""  # the oldest, closed without an answer
    finally:
        for sock in held:
            sock.close()


def test_connections_over_the_limit_are_503_when_none_is_idle(api: h.Api) -> None:
    held = [connect(api) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # each inside a request
        time.sleep(0.2)
        with connect(api) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            received = answer(sock)
        assert status(received) == 503
        assert b"retry-after: 1" in received
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert healthz(api) < 2


def test_a_flood_of_idle_connections_cannot_starve_the_service(api: h.Api) -> None:
    # Clients that open connections and send nothing, about 500 a second, 25 times the
    # connection limit: a client that sends its request when it connects is served all along.
    stop = threading.Event()
    opened = []

    def flood() -> None:
        while not stop.is_set():
            try:
                opened.append(connect(api))
            except OSError:
                pass
            time.sleep(0.008)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        latencies = [healthz(api) for _ in range(10)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for sock in opened:
            sock.close()
    assert len(opened) > 4 * MAX_CONNECTIONS
    assert max(latencies) < 2


def test_no_server_banner(api: h.Api) -> None:
    assert "server" not in httpx.get(f"{api.url}/healthz", timeout=5).headers


def test_the_limits_hold_with_several_api_processes(tmp_path: Path) -> None:
    server = h.Api(
        h.fresh_sqlite(tmp_path),
        tmp_path,
        INVSYNC_HEADER_TIMEOUT_SECONDS="1",
        INVSYNC_MAX_HEADER_BYTES="4096",
    )
    server.args += ["--workers", "2"]
    server.start()
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-h: " + b"v" * 8192 + b"\r\n")
            assert status(answer(sock)) == 431
        with connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert status(answer(sock)) == 408
    finally:
        server.stop()
