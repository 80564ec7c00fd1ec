"""Console sessions: a signed cookie that names a role and the token it was opened with.

The cookie holds `{role, digest of the token, expiry, nonce}` and an HMAC-SHA256 of it; it is
HttpOnly, `SameSite=Strict`, limited to `/console`, `Secure` when the page came over HTTPS, and
lives `INVSYNC_CONSOLE_SESSION_MINUTES`. It never holds the token. Each request checks the
token's digest against today's keyring, so removing a token from the configuration ends its
sessions at once, and a token moved from admin to ops loses its buttons. Signing out records
the session's nonce in the database (`ended_console_session`) until the cookie would have
expired, so a copy of the cookie is refused too, by every process.

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
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import delete, exc, insert, select
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from inventory_sync import credentials
from inventory_sync.api.auth import current_keyring
from inventory_sync.clock import utcnow
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import ended_console_session

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


def same(presented: str, expected: str) -> bool:
    """Constant-time equality of what a browser sent (any text) and what we signed."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode())


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
    if not same(signature, _sign(key, purpose, body)):
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
    nonce: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


async def current(request: Request) -> Session | None:
    """The request's session, or None (no cookie, a forged or expired one, a revoked token)."""
    key = await signing_key(request.app.state)
    claims = _open(key, "session", request.cookies.get(COOKIE))
    if claims is None or not isinstance(claims.get("sub"), str):
        return None
    if not isinstance(claims.get("n"), str):
        return None
    keyring = await current_keyring(request.app.state)
    role = keyring.role_of_digest(claims["sub"])
    if role is None:
        return None
    database: Database = request.app.state.store.database
    if await anyio.to_thread.run_sync(_ended, database, claims["n"]):
        return None
    nonce = claims["n"]
    return Session(role, _sign(key, "csrf", nonce), claims["exp"], nonce)


def _ended(db: Database, nonce: str) -> bool:
    t = ended_console_session
    with db.snapshot() as conn:
        return conn.execute(select(t.c.nonce).where(t.c.nonce == nonce)).first() is not None


def _end(db: Database, nonce: str, expires: int) -> None:
    t = ended_console_session
    now = utcnow()
    try:
        with db.transaction() as conn:
            # What has expired by itself needs no record any more.
            conn.execute(delete(t).where(t.c.expires_at <= now))
            conn.execute(
                insert(t).values(nonce=nonce, expires_at=datetime.fromtimestamp(expires, UTC))
            )
    except exc.IntegrityError:
        pass  # a sign-out of the same session at the same moment: it is ended either way


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


async def close_session(request: Request, ending: Session, response: Response) -> None:
    """Sign out: `ending` is refused from now on, and the browser forgets its cookie."""
    database: Database = request.app.state.store.database
    await anyio.to_thread.run_sync(_end, database, ending.nonce, ending.expires)
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
    return same(presented, _sign(key, "sign-in-csrf", str(claims.get("n"))))


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
