"""The netsuite adapter: each document upserted as a record through NetSuite's REST record
service (PRODUCT.md 7.1), within an account-wide limit of requests in flight.

`PUT <INVSYNC_ERP_URL>services/rest/record/v1/<type>/eid:<message id>` creates the record with
the message id as its external id, or updates the one a previous delivery created, so a
redelivered document books nothing twice; the message id also goes as
`X-NetSuite-Idempotency-Key`. Requests are signed with token-based authentication (OAuth 1.0a,
HMAC-SHA256).

NetSuite limits the requests in flight per account, for all integrations together, and refuses
the rest (429, or an error coded `CONCURRENCY_LIMIT_EXCEEDED`). So that the workers never cause
that, each request first takes one of `INVSYNC_NETSUITE_CONCURRENCY` permits kept in the
database (`Store.take_permit`), whatever worker or machine sends it. A permit is returned with
the answer and lapses on its own shortly after the request's time bound, so a killed worker
holds none for long. Without a permit, or when NetSuite still says it is busy, the message is
`throttled`: sent again shortly, without using an attempt or counting toward the breaker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import time
import urllib.parse
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import orjson
import yarl
from pydantic import SecretStr

from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import mapping as erp_mapping
from inventory_sync.erp_sync import oauth1
from inventory_sync.erp_sync.client import (
    BODY_EXCERPT_CHARS,
    KEEPALIVE_SECONDS,
    USER_AGENT,
    Outcome,
    Result,
    classify,
    env_proxy,
    read_start,
)
from inventory_sync.erp_sync.netsuite_records import Books, record
from inventory_sync.erp_sync.retry import parse_retry_after
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.settings import NETSUITE_REQUIRED, Settings

RECORD_PATH = "services/rest/record/v1/"
CONCURRENCY_ERROR = "CONCURRENCY_LIMIT_EXCEEDED"
# A permit outlives the request it covers by this much: room for clocks that differ a little
# between the workers' machines.
PERMIT_MARGIN_SECONDS = 5.0
# Between two asks for a permit while all are held (jittered): each ask is a short write
# transaction, on SQLite one that intake's writes queue behind.
PERMIT_POLL_SECONDS = 0.1
# The part of the request bound spent waiting for a permit, at most; then the message waits.
PERMIT_WAIT_SHARE = 0.25
_READ_LIMIT_BYTES = 16 * BODY_EXCERPT_CHARS


class Permits(Protocol):
    """The part of the Store the adapter needs (storage.store.Store)."""

    async def take_permit(
        self, limit: int, holder: str, now: datetime, held_until: datetime
    ) -> int | None: ...

    async def return_permit(self, slot: int, holder: str) -> None: ...


class NetSuiteAdapter:
    def __init__(
        self,
        url: str,
        credentials: oauth1.Credentials,
        books: Books,
        mapping: erp_mapping.Mapping,
        permits: Permits,
        *,
        concurrency: int,
        timeout_seconds: float,
        pool: int = 10,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"INVSYNC_ERP_URL: expected an http(s) URL, got {url!r}")
        self.base = url if url.endswith("/") else url + "/"
        self.credentials = credentials
        self.books = books
        self.mapping = mapping
        self.permits = permits
        self.concurrency = concurrency
        # Bounds waiting for a permit and the request together: the worker sizes its claims'
        # leases from it, as for the json adapter's one request.
        self.timeout_seconds = timeout_seconds
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._proxy, self._proxy_auth = env_proxy(url)
        self._pool = pool
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, permits: Permits, *, pool: int | None = None
    ) -> NetSuiteAdapter:
        if settings.erp_url is None:
            raise ValueError("INVSYNC_ERP_URL is not set")
        given = {name: _value(settings, name) for name in NETSUITE_REQUIRED}
        credentials = oauth1.Credentials(
            realm=oauth1.realm(given["netsuite_account_id"]),
            consumer_key=given["netsuite_consumer_key"],
            consumer_secret=given["netsuite_consumer_secret"],
            token=given["netsuite_token_id"],
            token_secret=given["netsuite_token_secret"],
        )
        return cls(
            settings.erp_url,
            credentials,
            Books(given["netsuite_adjustment_account"], settings.netsuite_subsidiary),
            erp_mapping.load(settings.erp_mapping),
            permits,
            concurrency=settings.netsuite_concurrency,
            timeout_seconds=settings.erp_timeout_seconds,
            pool=min(pool or settings.erp_concurrency, settings.netsuite_concurrency),
        )

    # -- delivery -----------------------------------------------------------------------------

    async def send(self, message_id: str, document: str) -> Result:
        started = time.perf_counter()
        deadline = started + self.timeout_seconds

        def elapsed_ms() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            booked = record(orjson.loads(document), self.mapping, self.books)
        except (ValueError, KeyError, TypeError) as error:
            return Result(Outcome.DEAD, elapsed_ms(), error=f"unreadable document: {error!r}")
        if booked is None:
            return Result(Outcome.DELIVERED, elapsed_ms())  # nothing to book
        # Each permit its own holder: a late return of a lapsed permit never frees the same
        # slot taken again since by another lane of this adapter.
        holder = f"{self.holder}:{secrets.token_hex(4)}"
        try:
            slot = await self._take_permit(deadline, holder)
        except DatabaseUnavailable as error:
            reason = f"no NetSuite permit: database unavailable: {str(error)[:200]}"
            return Result(Outcome.THROTTLED, elapsed_ms(), error=reason)
        if slot is None:
            reason = f"all {self.concurrency} NetSuite permits (INVSYNC_NETSUITE_CONCURRENCY) held"
            return Result(Outcome.THROTTLED, elapsed_ms(), error=reason)
        url = f"{self.base}{RECORD_PATH}{booked.type}/eid:{urllib.parse.quote(message_id)}"
        try:
            status, body, retry_after = await self._put(
                url, message_id, booked.body, deadline - time.perf_counter()
            )
        # Without an answer NetSuite may still be working on the request: its permit is kept
        # until it lapses, so that no other request is sent in its place meanwhile.
        except TimeoutError:
            return Result(Outcome.RETRY, elapsed_ms(), error="timeout")
        except (aiohttp.ClientError, OSError) as error:
            reason = str(error).strip() or type(error).__name__
            return Result(
                Outcome.RETRY,
                elapsed_ms(),
                error=f"connection error: {reason[:BODY_EXCERPT_CHARS]}",
            )
        await self._return_permit(slot, holder)
        outcome, refusal = answer(status, body)
        return Result(outcome, elapsed_ms(), status, refusal, retry_after)

    async def _take_permit(self, deadline: float, holder: str) -> int | None:
        """A permit held until shortly after `deadline`, waiting a part of the time bound for
        one while all are held; None if none came free."""
        give_up = time.perf_counter() + self.timeout_seconds * PERMIT_WAIT_SHARE
        while True:
            now = utcnow()
            until = now + timedelta(seconds=deadline - time.perf_counter() + PERMIT_MARGIN_SECONDS)
            slot = await self.permits.take_permit(self.concurrency, holder, now, until)
            if slot is not None or time.perf_counter() >= give_up:
                return slot
            await asyncio.sleep(PERMIT_POLL_SECONDS * random.uniform(0.5, 1.5))

    async def _return_permit(self, slot: int, holder: str) -> None:
        try:
            await self.permits.return_permit(slot, holder)
        except DatabaseUnavailable:
            pass  # it lapses on its own

    async def _put(
        self, url: str, message_id: str, body: dict[str, Any], seconds_left: float
    ) -> tuple[int, bytes, float | None]:
        if seconds_left <= 0:
            raise TimeoutError
        headers = {
            "Authorization": oauth1.authorization(
                "PUT",
                url,
                self.credentials,
                timestamp=int(time.time()),
                nonce=secrets.token_hex(16),
            ),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-NetSuite-Idempotency-Key": message_id,
        }
        async with self._open().put(
            yarl.URL(url, encoded=True),
            data=json.dumps(body).encode(),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds_left),
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as reply:
            return (
                reply.status,
                await read_start(reply.content, _READ_LIMIT_BYTES),
                parse_retry_after(reply.headers.get("Retry-After")),
            )

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._pool, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> NetSuiteAdapter:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def _value(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    if value is None:
        raise ValueError(f"INVSYNC_{name.upper()}: INVSYNC_ERP_ADAPTER=netsuite needs it")
    return str(value.get_secret_value() if isinstance(value, SecretStr) else value)


def answer(status: int, body: bytes) -> tuple[Outcome, str | None]:
    """NetSuite's answer as an outcome and, unless delivered, the reason kept with it: the
    `o:errorDetails` of its error body (`o:errorCode: detail`), else the start of the body."""
    codes, text = _error_details(body)
    if status == 429 or CONCURRENCY_ERROR in codes:
        outcome = Outcome.THROTTLED
    else:
        outcome = classify(status)
    if outcome is Outcome.DELIVERED:
        return outcome, None
    return outcome, f"HTTP {status}: {text}"[:BODY_EXCERPT_CHARS] if text else f"HTTP {status}"


def _error_details(body: bytes) -> tuple[set[str], str]:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return set(), text
    details = parsed.get("o:errorDetails") if isinstance(parsed, dict) else None
    if not isinstance(details, list):
        return set(), text
    codes: set[str] = set()
    parts: list[str] = []
    for detail in details:
        if isinstance(detail, dict):
            code = str(detail.get("o:errorCode", ""))
            codes.add(code)
            path = f" at {detail['o:errorPath']}" if detail.get("o:errorPath") else ""
            parts.append(f"{code}: {detail.get('detail', '')}{path}")
    return codes, "; ".join(parts) or text
