"""POST one ERP document and classify the answer (PRODUCT.md section 7).

`send()` never raises for anything the network or the ERP does: every failure becomes a
`Result` the worker can record. The whole request, from connect to the last byte read, is
bounded by `timeout_seconds`, so a claim's lease can be sized from that one number.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from inventory_sync import __version__
from inventory_sync.erp_sync.retry import parse_retry_after
from inventory_sync.settings import Settings

# httpcore 1.0 imports `sniffio` inside `current_async_library()`, which it calls for every
# request (lock and event set-up); since anyio 4.11 no longer depends on sniffio, that import
# usually fails, and Python does not cache a failed import: every request then searches
# sys.path, a fifth of the worker's CPU (encode/httpcore#1103). A None entry makes the failing
# import immediate, with the same result ("asyncio").
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

USER_AGENT = f"inventory-sync/{__version__}"
# Kept from an error answer: enough to read the ERP's reason, small enough for every row.
BODY_EXCERPT_CHARS = 500
_READ_LIMIT_BYTES = 4 * BODY_EXCERPT_CHARS
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    """The ERP answered 2xx."""
    RETRY = "retry"
    """Worth trying again: timeout, connection error, 408, 425, 429 or 5xx."""
    DEAD = "dead"
    """The ERP refused the document for good (any other status); retrying cannot help."""


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
    """Sends documents to one ERP endpoint over a shared connection pool."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float,
        authorization: str | None = None,
        signing_secret: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pool: int = 10,
    ) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._authorization = authorization
        self._signer = signer(signing_secret) if signing_secret else None
        # One kept-alive HTTP/1.1 connection per concurrent delivery.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        pool: int | None = None,
    ) -> ErpClient:
        if settings.erp_url is None:
            raise ValueError("INVSYNC_ERP_URL is not set")
        auth = settings.erp_authorization
        secret = settings.erp_signing_secret
        return cls(
            settings.erp_url,
            timeout_seconds=settings.erp_timeout_seconds,
            authorization=auth.get_secret_value() if auth else None,
            signing_secret=secret.get_secret_value() if secret else None,
            transport=transport,
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

    async def send(self, message_id: str, document: str) -> Result:
        started = time.perf_counter()

        def elapsed_ms() -> int:
            return round((time.perf_counter() - started) * 1000)

        headers = self.headers(message_id, document, datetime.now(UTC))
        try:
            # httpx's timeouts apply per phase (connect, each read, each write); this bounds
            # the sum, so a server trickling bytes cannot hold a claim past its lease.
            async with asyncio.timeout(self.timeout_seconds):
                status, body, retry_after = await self._post(document.encode(), headers)
        except TimeoutError:
            return Result(Outcome.RETRY, elapsed_ms(), error="timeout")
        except httpx.TimeoutException as error:
            return Result(Outcome.RETRY, elapsed_ms(), error=f"timeout: {type(error).__name__}")
        except httpx.TransportError as error:
            return Result(
                Outcome.RETRY, elapsed_ms(), error=f"connection error: {_describe(error)}"
            )
        outcome = classify(status)
        reason = None
        if outcome is not Outcome.DELIVERED:
            reason = f"HTTP {status}: {body}" if body else f"HTTP {status}"
        return Result(outcome, elapsed_ms(), status, reason, retry_after)

    async def _post(self, content: bytes, headers: dict[str, str]) -> tuple[int, str, float | None]:
        async with self._http.stream("POST", self.url, content=content, headers=headers) as answer:
            # Read only the start of the body: enough for the error excerpt, and an ERP that
            # answers with megabytes costs nothing.
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= _READ_LIMIT_BYTES:
                    break
            body = b"".join(chunks).decode("utf-8", errors="replace")[:BODY_EXCERPT_CHARS]
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            return answer.status_code, body.strip(), retry_after

    async def aclose(self) -> None:
        await self._http.aclose()

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


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:BODY_EXCERPT_CHARS]
