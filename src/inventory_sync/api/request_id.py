"""Request ids: one per request, in every log line it causes and in its `X-Request-ID`; and the
headers every answer carries."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inventory_sync.observability.logs import REQUEST_ID

REQUEST_ID_HEADER = "X-Request-ID"
# An id from the caller is kept only when it is short and plain, so it cannot forge log lines.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Answers are data for one caller: never cached by a proxy or a browser, never sniffed into
# another type, never framed (the /docs page), and no Referer leaves them.
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_REPLACED = {b"x-request-id", *(name for name, _ in COMMON_HEADERS)}


class RequestIdMiddleware:
    """Binds `request_id` into every log line of a request and returns it as `X-Request-ID`,
    with `COMMON_HEADERS`.

    The caller's `X-Request-ID` (a proxy's, say) is reused when acceptable, else a new one is
    made. Pure ASGI rather than `BaseHTTPMiddleware`, so streamed answers (CSV export) stay
    streamed. The context variable also reaches sync routes, which run in worker threads with a
    copy of the request's context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _ACCEPTABLE_ID.fullmatch(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = secrets.token_hex(16)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _REPLACED
                ]
                headers += COMMON_HEADERS
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
