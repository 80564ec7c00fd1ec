"""A local server playing NetSuite's REST record service, and settings for the adapter.

It follows what NetSuite documents of the calls the adapter makes: `PUT
/services/rest/record/v1/<type>/eid:<external id>` upserts the record (204, no body), errors
are `{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode"}]}`, and more
requests in flight than the account's limit are refused with 400 `CONCURRENCY_LIMIT_EXCEEDED`.
Every call is recorded, its OAuth 1.0a signature checked with oauthlib (an implementation of
RFC 5849 other than the adapter's own).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from oauthlib.oauth1.rfc5849 import signature, utils
from pydantic import SecretStr

from inventory_sync.settings import Settings
from tests.erp_sync.conftest import erp_settings

ACCOUNT = "1234567-sb1"
REALM = "1234567_SB1"
CONSUMER_KEY = "ck-4f2a"
CONSUMER_SECRET = "cs secret/with+odd=chars"
TOKEN_ID = "tk-77b1"
TOKEN_SECRET = "ts-secret~9"
ADJUSTMENT_ACCOUNT = "212"
RECORD_PREFIX = "/services/rest/record/v1/"


@dataclass(frozen=True)
class Answer:
    status: int = 204
    error_code: str | None = None
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        if self.error_code is None:
            return b""
        error = {
            "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
            "title": "Bad Request",
            "status": self.status,
            "o:errorDetails": [{"detail": self.detail, "o:errorCode": self.error_code}],
        }
        return json.dumps(error).encode()


BUSY = Answer(
    400,
    "CONCURRENCY_LIMIT_EXCEEDED",
    "Concurrent request limit exceeded. Request blocked.",
)
TOO_MANY = Answer(429, headers={"Retry-After": "0"})


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    signed: bool
    answer: Answer

    @property
    def oauth(self) -> dict[str, str]:
        fields = utils.parse_authorization_header(self.headers["authorization"])
        return {name: utils.unescape(value) for name, value in fields}


class FakeNetSuite:
    """Answers from `script` first (one entry per request), then 204; refuses what exceeds
    `limit` requests in flight like NetSuite; keeps each upserted record by external id."""

    def __init__(self, *, delay: float = 0.0, limit: int | None = None) -> None:
        self.delay = delay
        self.limit = limit
        self.script: list[Answer] = []
        self.calls: list[Call] = []
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.netsuite = self
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def stock(self) -> dict[tuple[str, str], int]:
        """What the adjustments booked: item and location -> quantity."""
        totals: dict[tuple[str, str], int] = {}
        for (_, _), body in self.records.items():
            for line in body["inventory"]["items"]:
                key = (line["item"]["id"], line["location"]["id"])
                totals[key] = totals.get(key, 0) + line["adjustQtyBy"]
        return {key: n for key, n in totals.items() if n}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    netsuite: FakeNetSuite


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        fake = self.server.netsuite
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            if fake.limit is not None and fake.in_flight > fake.limit:
                answer = BUSY
            else:
                answer = fake.script.pop(0) if fake.script else Answer()
        try:
            time.sleep(fake.delay)
            body = json.loads(raw)
            signed = _signed(f"http://{headers['host']}{self.path}", headers)
            if answer.status == 204 and self.path.startswith(RECORD_PREFIX):
                record_type, _, key = self.path.removeprefix(RECORD_PREFIX).partition("/")
                with fake.lock:
                    fake.records[record_type, key] = body
            with fake.lock:
                fake.calls.append(Call("PUT", self.path, headers, body, signed, answer))
            payload = answer.body()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/vnd.oracle.resource+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


def _signed(url: str, headers: dict[str, str]) -> bool:
    """Whether the request's OAuth signature is right for the test's secrets (RFC 5849)."""
    authorization = headers["authorization"]
    query = url.partition("?")[2]
    params = signature.collect_parameters(
        uri_query=query, headers={"Authorization": authorization}, with_realm=False
    )
    base = signature.signature_base_string(
        "PUT", signature.base_string_uri(url), signature.normalize_parameters(params)
    )
    secrets = SimpleNamespace(client_secret=CONSUMER_SECRET, resource_owner_secret=TOKEN_SECRET)
    expected = signature.sign_hmac_sha256_with_client(base, secrets)
    given = utils.unescape(dict(utils.parse_authorization_header(authorization))["oauth_signature"])
    return signature.safe_string_equals(expected, given)


@pytest.fixture
def netsuite() -> Iterator[FakeNetSuite]:
    fake = FakeNetSuite()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def netsuite_settings(settings: Settings, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "erp_adapter": "netsuite",
        "netsuite_account_id": ACCOUNT,
        "netsuite_consumer_key": CONSUMER_KEY,
        "netsuite_consumer_secret": SecretStr(CONSUMER_SECRET),
        "netsuite_token_id": TOKEN_ID,
        "netsuite_token_secret": SecretStr(TOKEN_SECRET),
        "netsuite_adjustment_account": ADJUSTMENT_ACCOUNT,
        **overrides,
    }
    return erp_settings(settings, url, **values)


def netsuite_environment(url: str, concurrency: int) -> dict[str, str]:
    """The same set-up as environment variables, for a worker process."""
    return {
        "INVSYNC_ERP_URL": url,
        "INVSYNC_ERP_ADAPTER": "netsuite",
        "INVSYNC_NETSUITE_ACCOUNT_ID": ACCOUNT,
        "INVSYNC_NETSUITE_CONSUMER_KEY": CONSUMER_KEY,
        "INVSYNC_NETSUITE_CONSUMER_SECRET": CONSUMER_SECRET,
        "INVSYNC_NETSUITE_TOKEN_ID": TOKEN_ID,
        "INVSYNC_NETSUITE_TOKEN_SECRET": TOKEN_SECRET,
        "INVSYNC_NETSUITE_ADJUSTMENT_ACCOUNT": ADJUSTMENT_ACCOUNT,
        "INVSYNC_NETSUITE_CONCURRENCY": str(concurrency),
    }
