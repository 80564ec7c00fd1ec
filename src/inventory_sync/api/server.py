"""The HTTP server `serve` runs: uvicorn with httptools, bounded against clients that send too
much head, send it or a body too slowly, or hold more connections than the process has files.

uvicorn alone leaves a request head unbounded (httptools grows its header buffers by
concatenation, so one long header costs time quadratic in its length), times out only idle
keep-alive connections, and counts concurrency only once a head is complete. The protocol below
adds what is missing at the level where the bytes arrive, before any of them reach the app:

- a head larger than `max_header_bytes` is answered `431` and the connection closed;
- a head must arrive within `header_timeout` of the connection or of its first byte, and a
  body within `body_timeout` of its head, else `408` and the connection closed (a connection
  that sent nothing is closed without an answer);
- beyond `max_connections` open connections, the one idle longest (open, or kept alive,
  without a request) is closed to make room; with none idle, the new one is answered `503` and
  closed at once.

A reverse proxy in front can still add what a single process cannot: per-client rate limits,
TLS, and buffering of slow clients (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from inventory_sync.observability.metrics import CONNECTIONS_REFUSED
from inventory_sync.settings import Settings

log = logging.getLogger("inventory_sync.server")

# Open files the process needs besides its client connections: database pool, logs, the
# listening socket, the worker's pipes, with room to spare.
OTHER_FILES = 128


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 65_536
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_header_bytes,
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
            settings.max_connections,
        )


class Config(uvicorn.Config):
    """uvicorn's configuration with the limits and the protocol that applies them. uvicorn
    pickles it into each API process it starts, limits included."""

    def __init__(self, app: Any, limits: Limits, **options: Any) -> None:
        super().__init__(app, http=Protocol, server_header=False, **options)
        self.limits = limits


class Protocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = getattr(config, "limits", None) or Limits()
        self._in_head = True
        """Waiting for, or reading, a request head."""
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        """Answered and closing: what the parser still finds in the bytes at hand is dropped."""
        self._idle_since: float | None = None
        """Since when the connection has been open without a request: new, or kept alive."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            self._refuse("too_many_connections", 503, "too many connections; retry shortly")
            return
        self._arm(self.limits.header_timeout, "header_timeout")

    def _evict_idle(self) -> bool:
        """Make room by closing the connection that has been idle longest, as nginx reuses
        kept-alive connections when it runs short: a flood of connections that send nothing
        then costs real clients nothing but the header timeout of the flood's own."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, Protocol) and c is not self and c._idle_since is not None
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since or 0.0)
        CONNECTIONS_REFUSED.labels("evicted_idle").inc()
        oldest._refused = True
        oldest._disarm()
        oldest.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._idle_since = None
            # Counted whole before parsing: if the head is still incomplete after these bytes,
            # every one of them belongs to it.
            self._head_bytes += len(data)
            if self._deadline is None:
                self._arm(self.limits.header_timeout, "header_timeout")
        super().data_received(data)
        if (
            self._in_head
            and self._head_bytes > self.limits.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(
                "header_too_large",
                431,
                f"request head larger than {self.limits.max_header_bytes} bytes",
            )

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        limit = self.limits.max_header_bytes
        # A head that arrived whole with more bytes than the limit: measure the head itself.
        if self._head_bytes > limit and self._head_size() > limit:
            self._refuse("header_too_large", 431, f"request head larger than {limit} bytes")
            return
        self._in_head = False
        self._head_bytes = 0
        self._arm(self.limits.body_timeout, "body_timeout")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        self._in_head = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete and not self.pipeline:
            self._idle_since = self.loop.time()  # kept alive, waiting for the next request

    def _head_size(self) -> int:
        """The head's size as sent, give or take the request line's spaces and version."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if (self._in_head and self._head_bytes == 0) or (answering and self.cycle.response_started):
            # Nothing to answer, or an answer already under way that a 408 would corrupt.
            CONNECTIONS_REFUSED.labels("idle" if self._in_head else reason).inc()
            self.transport.close()
            return
        self._refuse(reason, 408, "request not received in time")

    def _refuse(self, reason: str, status: int, message: str) -> None:
        """Answer `status` and close, whatever the app is doing: it never sees this request."""
        self._refused = True
        CONNECTIONS_REFUSED.labels(reason).inc()
        log.debug("connection refused: %s", reason, extra={"client": self.client})
        body = message.encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)
        )
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        head.append(b"connection: close\r\n\r\n")
        self._disarm()
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def open_files_for(limits: Limits) -> Limits:
    """Raise this process's soft limit on open files as far as the connection limit needs and
    the hard limit allows; if that is not enough, lower the connection limit to what fits, so
    that connections beyond it are refused rather than left to fail `accept()`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_connections + OTHER_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return limits
    fits = max(soft - OTHER_FILES, 1)
    log.warning(
        "INVSYNC_MAX_CONNECTIONS=%d needs %d open files and this process may have %d: "
        "serving at most %d connections; raise the limit (ulimit -n) to serve more",
        limits.max_connections,
        wanted,
        soft,
        fits,
    )
    return Limits(limits.max_header_bytes, limits.header_timeout, limits.body_timeout, fits)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` and not yet listening: uvicorn listens on it when it
    starts serving, in each API process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
