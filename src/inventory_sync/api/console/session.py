"""Console sessions: a signed cookie that names a role and the token it was opened with.

The cookie holds `{role, digest of the token, expiry, nonce}` and an HMAC-SHA256 of it; it is
HttpOnly, `SameSite=Strict`, limited to `/console`, `Secure` when the page came over HTTPS, and
lives `INVSYNC_CONSOLE_SESSION_MINUTES`. It never holds the token. Each request checks the
token's digest against today's keyring, so removing a token from the configuration ends its
sessions at once, and a token moved from admin to ops loses its buttons.

The signing key comes from `INVSYNC_CONSOLE_SIGNING_KEY`; unset, it is a random value generated at
first use and kept in the database (`credentials.CONSOLE_KEY`), so that every process of one
database accepts the same sessions. Forms carry a CSRF token derived from the session's nonce;
the sign-in form, before any session, one derived from a nonce in a short-lived cookie of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from inventory_sync import credentials
from inventory_sync.api.auth import current_keyring
from inventory_sync.settings import Settings

COOKIE = "invsync_console"
SIGN_IN_COOKIE = "invsync_console_sign_in"
PATH = "/console"
SIGN_IN_SECONDS = 15 * 60


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def signing_key(state: State) -> bytes:
    """The app's key for sessions and CSRF tokens (`state`: the app's), read once."""
    key: bytes | None = getattr(state, "console_key", None)
    if key is not None:
        return key
    settings: Settings = state.settings
    if settings.console_signing_key is not None:
        secret = settings.console_signing_key.get_secret_value().encode()
    else:
        kind = credentials.CONSOLE_KEY
        stored = await state.store.ensure_credential(kind, credentials.new_secret(kind))
        secret = stored.sha256.encode()
    # Its own key, so that a value signed here means nothing anywhere else the secret is used.
    key = hmac.new(secret, b"inventory-sync console session", hashlib.sha256).digest()
    state.console_key = key
    return key


def _sign(key: bytes, purpose: str, text: str) -> str:
    return _b64(hmac.new(key, f"{purpose}:{text}".encode(), hashlib.sha256).digest())


def _seal(key: bytes, purpose: str, claims: dict[str, Any]) -> str:
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_sign(key, purpose, body)}"


def _open(key: bytes, purpose: str, value: str | None) -> dict[str, Any] | None:
    """The claims of a sealed value if its signature holds and it has not expired."""
    if not value or value.count(".") != 1:
        return None
    body, signature = value.split(".")
    if not hmac.compare_digest(signature, _sign(key, purpose, body)):
        return None
    try:
        claims = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        return None
    return claims if claims["exp"] > time.time() else None


@dataclass(frozen=True)
class Session:
    role: str
    """`admin` or `read`, from today's keyring."""
    csrf: str
    """What every form of this session must send back."""
    expires: int

    @property
    def admin(self) -> bool:
        return self.role == "admin"


async def current(request: Request) -> Session | None:
    """The request's session, or None (no cookie, a forged or expired one, a revoked token)."""
    key = await signing_key(request.app.state)
    claims = _open(key, "session", request.cookies.get(COOKIE))
    if claims is None or not isinstance(claims.get("sub"), str):
        return None
    keyring = await current_keyring(request.app.state)
    role = keyring.role_of_digest(claims["sub"])
    if role is None:
        return None
    return Session(role, _sign(key, "csrf", str(claims.get("n"))), claims["exp"])


async def open_session(request: Request, response: Response, token: str) -> str | None:
    """Sign in with an ops or admin token: set the cookie on `response` and return the role,
    or None when the token is no ops or admin token."""
    keyring = await current_keyring(request.app.state)
    role = keyring.role(token)
    if role is None:
        return None
    settings: Settings = request.app.state.settings
    lifetime = settings.console_session_minutes * 60
    claims = {
        "sub": credentials.digest(token),
        "exp": int(time.time()) + lifetime,
        "n": secrets.token_urlsafe(16),
    }
    key = await signing_key(request.app.state)
    _set(request, response, COOKIE, _seal(key, "session", claims), lifetime)
    response.delete_cookie(SIGN_IN_COOKIE, path=PATH, httponly=True, samesite="strict")
    return role


def close_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


@dataclass(frozen=True)
class SignIn:
    """A sign-in form's CSRF token and the cookie value it is checked against."""

    csrf: str
    cookie: str

    def set_cookie(self, request: Request, response: Response) -> None:
        _set(request, response, SIGN_IN_COOKIE, self.cookie, SIGN_IN_SECONDS)


async def new_sign_in(request: Request) -> SignIn:
    key = await signing_key(request.app.state)
    nonce = secrets.token_urlsafe(16)
    claims = {"exp": int(time.time()) + SIGN_IN_SECONDS, "n": nonce}
    return SignIn(_sign(key, "sign-in-csrf", nonce), _seal(key, "sign-in", claims))


async def sign_in_csrf_ok(request: Request, presented: str) -> bool:
    key = await signing_key(request.app.state)
    claims = _open(key, "sign-in", request.cookies.get(SIGN_IN_COOKIE))
    if claims is None:
        return False
    return hmac.compare_digest(presented, _sign(key, "sign-in-csrf", str(claims.get("n"))))


def _set(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
