"""A real local HTTP server playing the ERP, scriptable per request, and worker helpers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from inventory_sync.erp_sync.worker import Worker
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import Claim, Finished, Store, open_store
from tests import factories

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = '{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    started: float
    ended: float

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


class FakeErp:
    """Answers `default`, or `by_key[Idempotency-Key]`; records every request and any id
    that arrives while a request for the same id is still in flight."""

    def __init__(self) -> None:
        self.default = Reply()
        self.by_key: dict[str, Reply] = {}
        self.received: list[Received] = []
        self.overlaps: list[str] = []
        self.in_flight: set[str] = set()
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.erp = self
        self.url = f"http://127.0.0.1:{self.server.server_port}/erp/inventory"
        # A short poll interval makes shutdown() return at once instead of after 0.5 s.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def keys(self) -> list[str]:
        with self.lock:
            return [r.key for r in self.received]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.01)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 drops the SYNs of a burst of connections, and the client's
    # retransmission a second later looks like a timeout.
    request_queue_size = 128
    erp: FakeErp


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        erp = self.server.erp
        started = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        key = headers.get("idempotency-key", "")
        with erp.lock:
            if key in erp.in_flight:
                erp.overlaps.append(key)
            erp.in_flight.add(key)
            erp.max_in_flight = max(erp.max_in_flight, len(erp.in_flight))
            reply = erp.by_key.get(key, erp.default)
        try:
            time.sleep(reply.delay)
            raw = reply.body.encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:
            pass  # the client gave up (a timeout test); nothing to answer
        finally:
            with erp.lock:
                erp.in_flight.discard(key)
                erp.received.append(Received(headers, body, started, time.monotonic()))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def erp() -> Iterator[FakeErp]:
    fake = FakeErp()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A URL on a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/erp"


def erp_settings(settings: Settings, url: str | None, **overrides: Any) -> Settings:
    """The test settings pointed at an ERP, with times tiny enough for fast tests."""
    values: dict[str, Any] = {
        "erp_url": url,
        "erp_timeout_seconds": 2.0,
        "erp_concurrency": 4,
        "erp_max_attempts": 3,
        "erp_retry_base_seconds": 0.02,
        "erp_retry_max_seconds": 0.1,
    }
    values.update(overrides)
    if isinstance(values.get("erp_signing_secret"), str):
        values["erp_signing_secret"] = SecretStr(values["erp_signing_secret"])
    if isinstance(values.get("erp_authorization"), str):
        values["erp_authorization"] = SecretStr(values["erp_authorization"])
    return settings.model_copy(update=values)


# Stores opened by `LoopStore` in the event loop `run()` is running.
_OPENED: list[Store] = []


class LoopStore:
    """The backend's real store, opened in whichever event loop a test runs a worker in (an
    asyncpg pool belongs to the loop that opened it); `run()` closes it with its loop."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._store: Store | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def current(self) -> Store:
        loop = asyncio.get_running_loop()
        if self._store is None or self._loop is not loop:
            self._store = await open_store(self.database.url, pool_size=4)
            self._loop = loop
            _OPENED.append(self._store)
        return self._store

    async def claim_due(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Claim]:
        return await (await self.current()).claim_due(worker, limit, now, lease_until)

    async def finish_many(self, batch: list[Finished], worker: str) -> set[str]:
        return await (await self.current()).finish_many(batch, worker)

    async def release(self, ids: list[str], worker: str) -> int:
        return await (await self.current()).release(ids, worker)

    async def take_permit(
        self, limit: int, holder: str, now: datetime, held_until: datetime
    ) -> int | None:
        return await (await self.current()).take_permit(limit, holder, now, held_until)

    async def return_permit(self, slot: int, holder: str) -> None:
        await (await self.current()).return_permit(slot, holder)


def make_worker(settings: Settings, db: Database, **options: Any) -> Worker:
    options.setdefault("poll_seconds", 0.01)
    options.setdefault("lease_seconds", 5.0)
    return Worker(settings, LoopStore(db), **options)  # type: ignore[arg-type]


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` in a new event loop; close the stores opened in it."""

    async def main() -> Any:
        try:
            return await coroutine
        finally:
            while _OPENED:
                await _OPENED.pop().close()

    return asyncio.run(main())


def accept(client: TestClient, count: int = 1) -> list[str]:
    """Post `count` events through the real webhook; return their ERP message ids."""
    ids = []
    for n in range(count):
        answer = factories.post(client, factories.received((f"SKU-{n}", n + 1)))
        assert answer["status"] == "accepted"
        ids.append(message_of_event(client, answer["event_id"])["id"])
    return ids


def message_of_event(client: TestClient, event_id: int) -> dict[str, Any]:
    page = client.get(
        "/v1/sync/messages", params={"event_id": event_id}, headers=factories.read_headers()
    ).json()
    assert len(page["items"]) == 1, page
    item: dict[str, Any] = page["items"][0]
    return item


def message(client: TestClient, message_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/sync/messages/{message_id}", headers=factories.read_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
