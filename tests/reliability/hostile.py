"""What hostile clients cost a running service: `python3 dev.py hostile`.

Each case is one a client can try from outside, against `inventory-sync serve` on SQLite with
its default limits, and prints what it cost the server process (peak memory over the case, CPU
time, the slowest `/healthz` answered meanwhile) and how it ended. The figures are the ones in
docs/reliability.md ("Hostile clients"); the pass/fail checks of the same limits are
tests/reliability/test_server_limits.py and tests/intake/test_bad_input.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests import factories
from tests.reliability import harness as h


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self, field_name: str) -> int:
        """A `/proc/<pid>/status` figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(workdir: Path, nofile: int | None = None, **env: str) -> Iterator[Server]:
    port = h.free_port()

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log = (workdir / "serve.log").open("ab")
    proc = subprocess.Popen(
        [str(h.BIN), "serve", "--port", str(port), "--no-worker"],
        env=h.service_env(h.fresh_sqlite(workdir), **env),
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,
    )
    server = Server(proc, port)
    h.wait_until(lambda: _healthy(server), 60, "serve started")
    try:
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _healthy(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Probe:
    """`/healthz` every 100 ms on fresh connections while a case runs."""

    server: Server
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with connect(self.server) as sock:
                    sock.sendall(request)
                    ok = answer(sock).startswith("HTTP/1.1 200")
            except OSError:
                ok = False
            if ok:
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures += 1
            time.sleep(0.1)

    def line(self) -> str:
        slowest = max(self.latencies, default=float("nan")) * 1000
        return f"probes {len(self.latencies)} ok / {self.failures} not, slowest {slowest:.0f} ms"


def measure(server: Server, name: str, case: Callable[[], str]) -> None:
    server.reset_peak()
    before_rss, cpu = server.status("VmRSS"), server.cpu_seconds()
    probe = Probe(server)
    thread = threading.Thread(target=probe.run)
    thread.start()
    started = time.monotonic()
    try:
        outcome = case()
    finally:
        probe._stop.set()
        thread.join()
    print(
        f"{name}\n    {outcome}; {time.monotonic() - started:.1f} s; "
        f"RSS {before_rss // 1024} MiB, peak {server.status('VmHWM') // 1024} MiB; "
        f"CPU {server.cpu_seconds() - cpu:.1f} s; {probe.line()}",
        flush=True,
    )


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=120)


def answer(sock: socket.socket) -> str:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received.split(b"\r\n", 1)[0].decode() or "closed without an answer"


def send_all(sock: socket.socket, chunks: Iterator[bytes]) -> int:
    sent = 0
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def many_headers(server: Server) -> str:
    def client(results: list[str]) -> None:
        with connect(server) as sock:
            lines = (b"X-h: v\r\n" * 65536 for _ in range(128))  # 8,388,608 headers
            sent = send_all(sock, iter([b"GET /healthz HTTP/1.1\r\nHost: x\r\n", *lines]))
            results.append(f"{answer(sock)} after {sent / 2**20:.1f} MiB sent")

    results: list[str] = []
    threads = [threading.Thread(target=client, args=(results,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return "; ".join(results)


def long_header_value(server: Server) -> str:
    with connect(server) as sock:
        chunks = (b"v" * 2**20 for _ in range(128))
        sent = send_all(sock, iter([b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-h: ", *chunks]))
        return f"{answer(sock)} after {sent / 2**20:.1f} MiB sent"


def half_sent_head(server: Server) -> str:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        return answer(sock)


def webhook_head(length: int) -> bytes:
    return (
        b"POST /webhooks/newstore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + h.WEBHOOK_KEY.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def trickle(count: int) -> Iterator[bytes]:
    for _ in range(count):
        yield b" "
        time.sleep(1)


def trickled_body(server: Server) -> str:
    with connect(server) as sock:
        sock.sendall(webhook_head(100))
        sent = send_all(sock, trickle(100))
        return f"{answer(sock)} after {sent} bytes at 1 byte/s"


def short_body(server: Server) -> str:
    with connect(server) as sock:
        sock.sendall(webhook_head(1000) + b"{" * 10)
        return answer(sock)


def idle_connections(server: Server) -> str:
    held = []
    refused = 0
    for _ in range(1124):
        try:
            held.append(connect(server))
        except OSError:
            refused += 1
    time.sleep(12)  # past the header timeout
    closed = 0
    for sock in held:
        sock.settimeout(0.5)
        try:
            closed += sock.recv(1024) is not None
        except (TimeoutError, ConnectionResetError):
            pass
        sock.close()
    return f"{len(held)} opened, {refused} refused at connect, {closed} closed by the server"


def post(server: Server, body: bytes) -> str:
    headers = {"Authorization": f"Bearer {h.WEBHOOK_KEY}", "Content-Type": "application/json"}
    response = httpx.post(
        f"{server.url}/webhooks/newstore", content=body, headers=headers, timeout=120
    )
    answer = response.json()
    return f"{response.status_code} {answer['status']}: {(answer.get('detail') or '')[:90]}"


def zeros_body() -> bytes:
    body = json.dumps(factories.received(("A", 1))).encode()
    zeros = b",".join([b"0"] * 5_000_000)
    return body.replace(b'"items": [', b'"items": [' + zeros + b",", 1)


def many_lines_body() -> bytes:
    body = factories.received(("A", 1))
    body["payload"]["items"] = [{"product_id": f"P{n:06d}", "quantity": 1} for n in range(275_930)]
    return json.dumps(body, separators=(",", ":")).encode()


def four_event_reads(server: Server, event_id: int) -> str:
    sizes: list[int] = []

    def read() -> None:
        headers = {"Authorization": f"Bearer {h.READ_TOKEN}"}
        response = httpx.get(f"{server.url}/v1/events/{event_id}", headers=headers, timeout=120)
        sizes.append(len(response.content))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return f"answers of {', '.join(f'{s / 1024:.0f} KiB' for s in sizes)}"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hostile-") as directory:
        workdir = Path(directory)
        with serving(workdir) as server:
            measure(server, "two clients, 8,388,608 headers each", lambda: many_headers(server))
            measure(server, "one header value of 128 MiB", lambda: long_header_value(server))
            measure(server, "a head sent in part, then nothing", lambda: half_sent_head(server))
            measure(server, "a body trickled at 1 byte/s", lambda: trickled_body(server))
            measure(server, "Content-Length 1000, 10 bytes sent", lambda: short_body(server))
            zeros = zeros_body()
            measure(
                server,
                f"{len(zeros) / 2**20:.1f} MiB body, items of 5,000,000 zeros",
                lambda: post(server, zeros),
            )
            lines = many_lines_body()
            event_ids: list[int] = []

            def many_lines() -> str:
                outcome = post(server, lines)
                headers = {"Authorization": f"Bearer {h.READ_TOKEN}"}
                listing = httpx.get(f"{server.url}/v1/events?limit=1000", headers=headers).json()
                event_ids.append(listing["items"][-1]["id"])
                return outcome

            measure(server, f"{len(lines) / 2**20:.1f} MiB body, 275,930 lines", many_lines)
            measure(
                server,
                "four reads at once of that event",
                lambda: four_event_reads(server, event_ids[0]),
            )
        limited = workdir / "limited"
        limited.mkdir()
        with serving(limited, nofile=1024) as server:
            measure(
                server,
                "1,124 idle connections, open-file limit 1,024",
                lambda: idle_connections(server),
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
