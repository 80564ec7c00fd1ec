"""POST one ERP document and classify the answer (PRODUCT.md section 7).

`send()` never raises for anything the network or the ERP does: every failure becomes a
`Result` the worker can record. The whole request, from connect to the last byte read, is
bounded by `timeout_seconds`, so a claim's lease can be sized from that one number.
"""

from __future__ import annotations

import enum
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import yarl
from standardwebhooks.webhooks import Webhook

from inventory_sync import __version__
from inventory_sync.erp_sync.retry import parse_retry_after
from inventory_sync.settings import Settings

USER_AGENT = f"inventory-sync/{__version__}"
# Kept from an error answer: enough to read the ERP's reason, small enough for every row.
BODY_EXCERPT_CHARS = 500
_READ_LIMIT_BYTES = 4 * BODY_EXCERPT_CHARS
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# Seconds an idle kept-alive connection stays in the pool.
KEEPALIVE_SECONDS = 15.0


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    """The ERP answered 2xx."""
    RETRY = "retry"
    """Worth trying again: timeout, connection error, 408, 425, 429 or 5xx."""
    DEAD = "dead"
    """The ERP refused the document for good (any other status); retrying cannot help."""
    THROTTLED = "throttled"
    """The ERP (or our share of its concurrency) had no room for the request: sent again after
    `retry_after`, without using an attempt and without a word to the breaker."""


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def classify(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code in RETRYABLE_STATUSES or 500 <= status_code < 600:
        return Outcome.RETRY
    return Outcome.DEAD


class ErpClient:
    """Sends documents to one ERP endpoint over one aiohttp session: at most `pool` kept-alive
    connections, through the proxy the environment names for the URL, if any."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        authorization: str | None = None,
        signing_secret: str | None = None,
        pool: int = 10,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"INVSYNC_ERP_URL: expected an http(s) URL, got {url!r}")
        if authorization is not None and ("\r" in authorization or "\n" in authorization):
            raise ValueError("INVSYNC_ERP_AUTHORIZATION: line breaks are not allowed")
        self.url = url
        self._target = yarl.URL(url)
        # Read once: aiohttp's trust_env would look the proxy up again for every request,
        # in a thread, a tenth of the worker's CPU at the drain rate.
        self._proxy, self._proxy_auth = env_proxy(url)
        self.timeout_seconds = timeout_seconds
        self._authorization = authorization
        self._signer = signer(signing_secret) if signing_secret else None
        self._pool = pool
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        # Made on first use, inside the event loop that sends (aiohttp binds it to that loop).
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, pool: int | None = None) -> ErpClient:
        if settings.erp_url is None:
            raise ValueError("INVSYNC_ERP_URL is not set")
        auth = settings.erp_authorization
        secret = settings.erp_signing_secret
        return cls(
            settings.erp_url,
            timeout_seconds=settings.erp_timeout_seconds,
            authorization=auth.get_secret_value() if auth else None,
            signing_secret=secret.get_secret_value() if secret else None,
            pool=pool or settings.erp_concurrency,
        )

    def headers(self, message_id: str, document: str, now: datetime) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message_id,
            "User-Agent": USER_AGENT,
        }
        if self._authorization:
            headers["Authorization"] = self._authorization
        if self._signer is not None:
            # The library floors the timestamp to whole seconds; the header must match it.
            headers["webhook-id"] = message_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(message_id, now, document)
        return headers

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._pool, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                # Bounds everything: connect (and waiting for a pooled connection), sending,
                # and reading the answer, so a server trickling bytes cannot hold a claim past
                # its lease.
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, message_id: str, document: str) -> Result:
        started = time.perf_counter()

        def elapsed_ms() -> int:
            return round((time.perf_counter() - started) * 1000)

        session = self._open()
        body = document.encode()
        headers = self.headers(message_id, document, datetime.now(UTC))
        try:
            try:
                status, excerpt, retry_after = await self._post(session, body, headers, None)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                # Closed before any answer, or the request could not be written: usually a
                # kept-alive connection the ERP closed just as the request went out. Sent
                # again at once on a new connection, within what is left of the bound (the
                # Idempotency-Key makes a repeat harmless); a second failure is recorded.
                # Not when no connection could be made: that will not change at once.
                left = self.timeout_seconds - (time.perf_counter() - started)
                if isinstance(error, aiohttp.ClientConnectorError) or left <= 0:
                    raise
                status, excerpt, retry_after = await self._post(session, body, headers, left)
        except TimeoutError:  # asyncio.TimeoutError, and aiohttp's timeouts derive from it
            return Result(Outcome.RETRY, elapsed_ms(), error="timeout")
        except (aiohttp.ClientError, OSError) as error:
            return Result(
                Outcome.RETRY, elapsed_ms(), error=f"connection error: {_describe(error)}"
            )
        outcome = classify(status)
        reason = None
        if outcome is not Outcome.DELIVERED:
            reason = f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
        return Result(outcome, elapsed_ms(), status, reason, retry_after)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        body: bytes,
        headers: dict[str, str],
        seconds_left: float | None,
    ) -> tuple[int, str, float | None]:
        # The session's timeout unless less is left (aiohttp reads timeout=None as "none").
        timeout = self._timeout if seconds_left is None else aiohttp.ClientTimeout(seconds_left)
        async with session.post(
            self._target,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        ) as answer:
            # Only the start of the body: enough for the error excerpt, and an ERP that answers
            # with megabytes costs nothing (the connection is then closed, not reused).
            start = await read_start(answer.content, _READ_LIMIT_BYTES)
            excerpt = start.decode("utf-8", errors="replace")[:BODY_EXCERPT_CHARS]
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            return answer.status, excerpt.strip(), retry_after

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> ErpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer, or ValueError naming the variable for a secret that is
    not `whsec_` followed by base64 (the library would fail later, mid-delivery)."""
    try:
        return Webhook(secret)
    except Exception as error:  # binascii.Error or the library's own empty-secret error
        raise ValueError(
            "INVSYNC_ERP_SIGNING_SECRET: expected whsec_ followed by a base64 key"
        ) from error


async def read_start(content: aiohttp.StreamReader, limit: int) -> bytes:
    """At most the first `limit` bytes of an answer's body."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def env_proxy(url: str) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for `url` (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, as
    aiohttp's `trust_env` reads them), with its credentials apart; (None, None) for none."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None, None
    value = urllib.request.getproxies().get(parts.scheme)
    if not value:
        return None, None
    proxy = yarl.URL(value)
    return proxy.with_user(None), aiohttp.BasicAuth.from_url(proxy)


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:BODY_EXCERPT_CHARS]
