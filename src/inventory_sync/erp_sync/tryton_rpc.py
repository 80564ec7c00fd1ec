"""Tryton's JSON-RPC as a client sees it: a login session, model calls, and errors sorted into
"try again" and "refused".

`INVSYNC_ERP_URL` names the server and its database (`http://host:8000/DBNAME/`); calls go to
`<url>rpc/` as `{"id", "method", "params"}` with the user's context as the last parameter. A
session (`common.db.login`) is tied to the user and the client's address and ends after the
server's `[session] max_age`: a 401 on a call logs in again once and repeats the call.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import httpx

from inventory_sync import __version__
from inventory_sync.erp_sync.retry import parse_retry_after

# Kept from an error: enough to read Tryton's reason, small enough for every attempt row.
ERROR_CHARS = 500
# Exceptions Tryton raises for a request it will never accept as it is.
REFUSALS = frozenset(
    {"UserError", "UserWarning", "AccessError", "ValidationError", "RequiredValidationError"}
)


class TrytonUnavailable(Exception):
    """Worth trying again: no answer, a timeout, a 5xx, 429, or Tryton's own failure."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class TrytonRefused(Exception):
    """Tryton refused the request (or the login) for good; the reason is Tryton's message."""


class TrytonRpc:
    """One Tryton database over JSON-RPC, shared by every delivery of one worker."""

    def __init__(
        self, url: str, login: str, password: str, *, timeout_seconds: float, pool: int = 4
    ) -> None:
        if not url.endswith("/"):
            url += "/"
        self.url = url
        self._login = login
        self._password = password
        self._http = httpx.AsyncClient(
            timeout=timeout_seconds,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"User-Agent": f"inventory-sync/{__version__}"},
            follow_redirects=False,
        )
        self._ids = itertools.count(1)
        self._authorization: str | None = None
        self._login_lock = asyncio.Lock()
        self.context: dict[str, Any] = {}

    async def model(self, model: str, method: str, *params: Any) -> Any:
        """`model.<model>.<method>(*params, context)`, logged in first if need be."""
        if self._authorization is None:
            await self._log_in(None)  # the context comes with the login
        return await self.call(f"model.{model}.{method}", *params, self.context)

    async def call(self, method: str, *params: Any) -> Any:
        session = self._authorization
        if session is None:
            session = await self._log_in(None)
        try:
            return await self._post(method, list(params), session)
        except _SessionEnded:
            # Expired, or the server forgot it (restarted with another session store).
            return await self._post(method, list(params), await self._log_in(session))

    async def _log_in(self, ended: str | None) -> str:
        async with self._login_lock:
            if self._authorization is not None and self._authorization != ended:
                return self._authorization  # another delivery logged in meanwhile
            try:
                uid, session, *_ = await self._post(
                    "common.db.login", [self._login, {"password": self._password}], None
                )
            except _SessionEnded:
                raise TrytonRefused(f"Tryton refused the login of {self._login!r}") from None
            token = base64.b64encode(f"{self._login}:{uid}:{session}".encode()).decode()
            authorization = f"Session {token}"
            self.context = await self._post(
                "model.res.user.get_preferences", [True, {}], authorization
            )
            self._authorization = authorization
            return authorization

    async def _post(self, method: str, params: list[Any], authorization: str | None) -> Any:
        headers = {"Authorization": authorization} if authorization else {}
        body = {"id": next(self._ids), "method": method, "params": params}
        try:
            answer = await self._http.post(f"{self.url}rpc/", json=body, headers=headers)
        except httpx.TimeoutException:
            raise TrytonUnavailable("timeout") from None
        except httpx.HTTPError as error:
            raise TrytonUnavailable(f"connection error: {_short(error)}") from None
        if answer.status_code == 401:
            raise _SessionEnded
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TrytonUnavailable(
                f"HTTP {answer.status_code}: {answer.text.strip()[:ERROR_CHARS]}",
                parse_retry_after(answer.headers.get("Retry-After")),
            )
        if answer.status_code != 200:
            raise TrytonRefused(f"HTTP {answer.status_code}: {answer.text.strip()[:ERROR_CHARS]}")
        try:
            reply = answer.json()
        except ValueError:
            raise TrytonUnavailable("Tryton answered something that is not JSON") from None
        if not isinstance(reply, dict):
            raise TrytonUnavailable("Tryton answered something that is not a JSON-RPC reply")
        if "error" in reply and reply["error"] is not None:
            raise _error(method, reply["error"])
        return reply.get("result")

    async def aclose(self) -> None:
        await self._http.aclose()


class _SessionEnded(Exception):
    """HTTP 401: no session, an expired one, or a wrong password."""


def _error(method: str, error: Any) -> Exception:
    """Tryton's `[name, args]` error as a refusal or a reason to try again."""
    name, args = (error[0], error[1]) if isinstance(error, list) and len(error) > 1 else (error, "")
    message = args[0] if isinstance(args, list) and args else args
    if isinstance(args, list) and name == "UserWarning" and len(args) > 1:
        message = args[1]  # [warning name, message, description]
    text = f"{name}: {message}" if message else str(name)
    text = f"Tryton refused {method}: {text}"[:ERROR_CHARS]
    if name in REFUSALS:
        return TrytonRefused(text)
    # Concurrent updates, a locked database, a bug: Tryton's own trouble, often passing.
    return TrytonUnavailable(text)


def _short(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__)[:ERROR_CHARS]
