"""The ERP stand-in of `inventory-sync erp-standin`, driven by the real client."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from inventory_sync.erp_sync import standin
from inventory_sync.erp_sync.client import ErpClient, Outcome
from tests.erp_sync.conftest import SECRET

Start = Callable[..., tuple[str, io.StringIO]]
DOCUMENT = json.dumps({"id": "m-1", "type": "inventory.receipt", "lines": []})


@pytest.fixture
def start() -> Iterator[Start]:
    servers: list[standin.StandinServer] = []

    def _start(**options: Any) -> tuple[str, io.StringIO]:
        out = io.StringIO()
        server = standin.serve("127.0.0.1", 0, standin.Behaviour(out=out, **options))
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/", out

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def _send(url: str, message_id: str = "m-1", secret: str | None = SECRET) -> Outcome:
    async def go() -> Outcome:
        client = ErpClient(url, timeout_seconds=5, signing_secret=secret)
        try:
            return (await client.send(message_id, DOCUMENT)).outcome
        finally:
            await client.aclose()

    return asyncio.run(go())


class TestStandin:
    def test_prints_each_document_and_reports_duplicates(self, start: Start) -> None:
        url, out = start(secret=SECRET)
        assert _send(url) is Outcome.DELIVERED
        assert _send(url) is Outcome.DELIVERED
        lines = out.getvalue().splitlines()
        assert lines == [
            f"received {json.dumps(json.loads(DOCUMENT), separators=(',', ':'))}",
            "duplicate m-1",
        ]

    def test_bad_signature_is_401(self, start: Start) -> None:
        url, out = start(secret=SECRET)
        other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
        assert _send(url, secret=other) is Outcome.DEAD
        unsigned = httpx.post(url, content=DOCUMENT, headers={"Idempotency-Key": "m-2"})
        assert unsigned.status_code == 401
        assert "received" not in out.getvalue()

    def test_can_be_told_to_fail(self, start: Start) -> None:
        url, out = start(fail_first=2, fail_status=503)
        assert _send(url, secret=None) is Outcome.RETRY
        assert _send(url, secret=None) is Outcome.RETRY
        assert _send(url, secret=None) is Outcome.DELIVERED
        assert out.getvalue().count("failing request") == 2

    def test_fail_rate_one_fails_everything(self, start: Start) -> None:
        url, _ = start(fail_rate=1.0, fail_status=500)
        assert _send(url, secret=None) is Outcome.RETRY
