"""An HTTP client for NewStore's APIs: authentication, rate limits and errors in one place.

Authentication is a NewStore access token (`INVSYNC_NEWSTORE_TOKEN`) or an API client's
credentials exchanged for one with the OAuth client credentials grant, as NewStore documents
(`https://id.p.newstore.net/auth/realms/{tenant}/protocol/openid-connect/token`). No credential
ever reaches a message this module builds: they travel in headers and bodies only, and every
text that came back from NewStore is scrubbed of them before it is shown or cut short. The
client knows every secret it sent: the configured ones, each token it fetched and each
`api_key` it put in a body; NewStore may echo any of them as sent (URL-encoded in a form,
escaped in JSON).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus

import httpx

from inventory_sync import __version__
from inventory_sync.settings import Settings

TOKEN_URL = "https://id.p.newstore.net/auth/realms/{tenant}/protocol/openid-connect/token"
TIMEOUT_SECONDS = 30.0
# A 429 is waited out this many times, each wait at most MAX_WAIT_SECONDS (NewStore's
# Retry-After, else a doubling pause); then the command gives up with the reason.
RATE_LIMIT_ATTEMPTS = 5
MAX_WAIT_SECONDS = 60.0
# The most of NewStore's own words a message keeps.
REASON_CHARS = 300
_HIDDEN = "***"


class MissingConfiguration(ValueError):
    """The `INVSYNC_NEWSTORE_*` settings a command needs are not there; names the variables."""


class NewStoreError(Exception):
    """NewStore refused a call or could not be reached; one line, no credential in it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(NewStoreError):
    """404: NewStore knows no such resource (its `resource_not_found`)."""


@dataclass(frozen=True)
class Credentials:
    url: str
    tenant: str
    token_url: str
    token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        missing = [
            name
            for name, value in (
                ("INVSYNC_NEWSTORE_URL", settings.newstore_url),
                ("INVSYNC_NEWSTORE_TENANT", settings.newstore_tenant),
            )
            if value is None
        ]
        if settings.newstore_token is None and settings.newstore_client_id is None:
            missing.append(
                "INVSYNC_NEWSTORE_TOKEN (or INVSYNC_NEWSTORE_CLIENT_ID and _CLIENT_SECRET)"
            )
        url, tenant = settings.newstore_url, settings.newstore_tenant
        if missing or url is None or tenant is None:
            raise MissingConfiguration("set " + ", ".join(missing))
        secret = settings.newstore_client_secret
        return cls(
            url=url.rstrip("/"),
            tenant=tenant,
            token_url=settings.newstore_token_url or TOKEN_URL.format(tenant=tenant),
            token=settings.newstore_token.get_secret_value() if settings.newstore_token else None,
            client_id=settings.newstore_client_id,
            client_secret=secret.get_secret_value() if secret else None,
        )


class Client:
    """Calls NewStore with a bearer token; a client credentials token is fetched when first
    needed and fetched again once if NewStore answers 401 (it expired)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self._sleep = sleep
        self._token = credentials.token
        self._secrets: set[str] = set()
        for secret in (credentials.token, credentials.client_secret, credentials.client_id):
            self._hide(secret)
        self._http = httpx.Client(
            base_url=credentials.url,
            timeout=TIMEOUT_SECONDS,
            transport=transport,
            headers={"User-Agent": f"inventory-sync/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None when empty), or NewStoreError/NotFound."""
        renewed = False
        for attempt in range(RATE_LIMIT_ATTEMPTS + 1):
            response = self._send(method, path, params, body)
            if response.status_code == 401 and self.credentials.client_id and not renewed:
                self._token, renewed = None, True
                response = self._send(method, path, params, body)
            if response.status_code != 429 or attempt == RATE_LIMIT_ATTEMPTS:
                break
            self._sleep(_retry_after(response, 2.0**attempt))
        if not response.is_success:
            raise self._refusal(method, path, response)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            # A proxy's login page, say: not NewStore's answer, and not to be echoed.
            raise NewStoreError(
                f"NewStore answered {response.status_code} to {method} {path} with a body "
                "that is not JSON",
                response.status_code,
            ) from None

    def scrub(self, text: str) -> str:
        """`text` without any secret this client knows, in any of the forms it may be echoed;
        the longest first, so that no part of one is left when another is inside it."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _HIDDEN)
        return text

    def _hide(self, secret: str | None) -> None:
        if secret:
            self._secrets.update(
                {
                    secret,
                    quote_plus(secret),
                    quote_plus(secret, safe=""),
                    json.dumps(secret)[1:-1],
                    json.dumps(secret, ensure_ascii=False)[1:-1],
                }
            )

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._access_token()}"}
        for key in _api_keys(body):
            self._hide(key)
        try:
            return self._http.request(method, path, params=params, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise NewStoreError(self._unreachable(self.credentials.url, error)) from None

    def _access_token(self) -> str:
        if self._token is None:
            self._token = self._client_credentials_token()
        return self._token

    def _client_credentials_token(self) -> str:
        creds = self.credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.client_id or "",
            "client_secret": creds.client_secret or "",
        }
        try:
            response = self._http.post(creds.token_url, data=form)
        except httpx.HTTPError as error:
            raise NewStoreError(self._unreachable(creds.token_url, error)) from None
        token = _json(response).get("access_token") if response.is_success else None
        if isinstance(token, str) and token:
            self._hide(token)
            return token
        reason = self._reason(response) if not response.is_success else "no access_token"
        raise NewStoreError(
            f"NewStore's token endpoint refused the API client ({response.status_code}"
            f" {reason}): check INVSYNC_NEWSTORE_CLIENT_ID and _CLIENT_SECRET",
            response.status_code,
        )

    def _unreachable(self, url: str, error: httpx.HTTPError) -> str:
        return self.scrub(f"cannot reach NewStore at {url}: {type(error).__name__}: {error}")

    def _refusal(self, method: str, path: str, response: httpx.Response) -> NewStoreError:
        status = response.status_code
        message = f"NewStore answered {status} to {method} {path}: {self._reason(response)}"
        if status in (401, 403):
            message += "; check INVSYNC_NEWSTORE_TOKEN or the API client's credentials and scopes"
        kind = NotFound if status == 404 else NewStoreError
        return kind(message, status)

    def _reason(self, response: httpx.Response) -> str:
        """NewStore's words, scrubbed before they are cut short: a secret cut in two would
        no longer be recognised."""
        return self.scrub(_reason(response))[:REASON_CHARS]


def _api_keys(body: Any) -> list[str]:
    """Every `api_key` value in a request body, however deep."""
    if isinstance(body, dict):
        found = [v for k, v in body.items() if k == "api_key" and isinstance(v, str)]
        return found + [key for v in body.values() for key in _api_keys(v)]
    if isinstance(body, list):
        return [key for item in body for key in _api_keys(item)]
    return []


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(response: httpx.Response) -> str:
    """The words of an error answer: a problem document's title, detail and request id,
    an OAuth error, or whatever text came back, on one line and whole."""
    data = _json(response)
    words = [
        str(data[k])
        for k in ("title", "detail", "error", "error_description", "message")
        if data.get(k)
    ]
    if data.get("request_id"):
        words.append(f"(request id {data['request_id']})")
    text = " ".join(words) or response.text.strip() or response.reason_phrase
    return " ".join(text.split())


def _retry_after(response: httpx.Response, default: float) -> float:
    """Retry-After in seconds or as an HTTP date, bounded; `default` without one."""
    value = response.headers.get("Retry-After", "").strip()
    seconds = default
    if value.isdigit():
        seconds = float(value)
    elif value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)
