"""POST one ERP document and classify the answer (PRODUCT.md section 7).

`send()` never raises for anything the network or the ERP does: every failure becomes a
`Result` the worker can record. The whole request, from connect to the last byte read, is
bounded by `timeout_seconds`, so a claim's lease can be sized from that one number.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib.util
import ssl
import sys
import time
import urllib.parse
import urllib.request
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
        if authorization is not None and ("\r" in authorization or "\n" in authorization):
            raise ValueError("INVSYNC_ERP_AUTHORIZATION: line breaks are not allowed")
        # A plain HTTP/1.1 client on asyncio streams costs a fraction of httpx's CPU per
        # request, which is what bounds the drain rate; httpx stays for an injected transport
        # and for a proxy configured in the environment (which httpx honours).
        self._lean = _Http1(url, pool) if transport is None and not _proxied(url) else None
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
                if self._lean is not None:
                    status, raw, retry_header = await self._lean.post(document.encode(), headers)
                    body = raw.decode("utf-8", errors="replace")[:BODY_EXCERPT_CHARS].strip()
                    retry_after = parse_retry_after(retry_header)
                else:
                    status, body, retry_after = await self._post(document.encode(), headers)
        except TimeoutError:
            return Result(Outcome.RETRY, elapsed_ms(), error="timeout")
        except httpx.TimeoutException as error:
            return Result(Outcome.RETRY, elapsed_ms(), error=f"timeout: {type(error).__name__}")
        except (
            httpx.TransportError,
            OSError,
            EOFError,
            asyncio.LimitOverrunError,
            ProtocolError,
        ) as error:
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
        if self._lean is not None:
            await self._lean.aclose()
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


class ProtocolError(Exception):
    """The ERP's answer is not HTTP/1.x as this client reads it."""


def _proxied(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


# Bodies up to this size are read to the end so the connection can be reused; a longer one
# (only its start matters) closes the connection instead.
_DRAIN_LIMIT_BYTES = 64 * 1024

_Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Http1:
    """POST to one origin over kept-alive HTTP/1.1 connections (asyncio streams, TLS for
    https). Reads Content-Length, chunked and close-delimited answers; returns the status, at
    most `_READ_LIMIT_BYTES` of the body and the Retry-After header. Errors are OSError,
    asyncio.IncompleteReadError (an OSError here: see `_read`) or ProtocolError."""

    def __init__(self, url: str, pool: int) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"INVSYNC_ERP_URL: expected an http(s) URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rpartition("@")[2]
        self._request_line = f"POST {target} HTTP/1.1\r\nHost: {authority}\r\n".encode()
        self._pool = pool
        self._idle: list[_Stream] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = self._request_line + "".join(lines).encode("latin-1") + body
        while True:
            stream, reused = await self._acquire()
            try:
                stream[1].write(request)
                await stream[1].drain()
                status, excerpt, retry_after, keep = await self._read(stream[0])
            except BaseException as error:
                _close(stream)
                # A kept-alive connection the ERP closed meanwhile: nothing was answered, so
                # send again on a new one (the Idempotency-Key makes a repeat harmless).
                if reused and isinstance(error, (OSError, EOFError)):
                    continue
                raise
            if keep and len(self._idle) < self._pool:
                self._idle.append(stream)
            else:
                _close(stream)
            return status, excerpt, retry_after

    async def _acquire(self) -> tuple[_Stream, bool]:
        while self._idle:
            stream = self._idle.pop()
            if stream[0].at_eof() or stream[1].is_closing():
                _close(stream)
                continue
            return stream, True
        stream = await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
        )
        return stream, False

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes, str | None, bool]:
        """(status, body excerpt, Retry-After, connection reusable). Only OSError and EOFError
        mean that nothing was answered; any failure after the header is a ProtocolError."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                if error.partial:
                    raise ProtocolError("answer ended inside its header") from None
                raise EOFError("connection closed without an answer") from None
            except asyncio.LimitOverrunError:
                raise ProtocolError("answer header too long") from None
            status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
            version, _, rest = status_line.partition(" ")
            code = rest[:3]
            if not (version.startswith("HTTP/1.") and code.isdigit() and len(code) == 3):
                raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
            status = int(code)
            fields: dict[str, str] = {}
            for line in header_lines:
                name, colon, value = line.partition(":")
                if not colon:
                    raise ProtocolError("malformed header line")
                fields[name.strip().lower()] = value.strip()
            if 100 <= status < 200 and status != 101:
                continue  # informational: the real answer follows
            break
        keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
        try:
            body, complete = await self._body(reader, status, fields)
        except (OSError, EOFError, asyncio.LimitOverrunError) as error:
            # After the header: not a closed idle connection, so never sent again.
            raise ProtocolError(f"answer cut off: {_describe(error)}") from None
        return status, body[:_READ_LIMIT_BYTES], fields.get("retry-after"), keep and complete

    @staticmethod
    async def _body(
        reader: asyncio.StreamReader, status: int, fields: dict[str, str]
    ) -> tuple[bytes, bool]:
        try:
            if status in (101, 204, 304) or status < 200:
                body, complete = b"", status != 101
            elif "chunked" in fields.get("transfer-encoding", "").lower():
                body, complete = await _read_chunked(reader)
            elif "content-length" in fields:
                length = fields["content-length"]
                if not length.isdigit():
                    raise ProtocolError("bad Content-Length")
                body, complete = await _read_length(reader, int(length))
            else:
                body, complete = await reader.read(_READ_LIMIT_BYTES), False
        except asyncio.IncompleteReadError:
            raise ProtocolError("answer ended inside its body") from None
        return body, complete

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for stream in idle:
            _close(stream)
        for _, writer in idle:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_length(reader: asyncio.StreamReader, length: int) -> tuple[bytes, bool]:
    if length <= _DRAIN_LIMIT_BYTES:
        return await reader.readexactly(length), True
    return await reader.readexactly(_READ_LIMIT_BYTES), False


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields
            return bytes(body), True
        if len(body) + size > _DRAIN_LIMIT_BYTES:
            body += await reader.readexactly(min(size, _READ_LIMIT_BYTES))
            return bytes(body), False
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


def _close(stream: _Stream) -> None:
    with contextlib.suppress(Exception):
        stream[1].close()


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:BODY_EXCERPT_CHARS]
