"""Bearer authentication: webhook keys, read-only ops tokens and admin tokens.

Secrets are compared as SHA-256 digests with `hmac.compare_digest` against every known digest,
so neither timing nor the position of a key in the rotation list leaks anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from inventory_sync import credentials, migrate
from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.errors import ServiceError
from inventory_sync.settings import Settings


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str = "missing or invalid bearer token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


@dataclass(frozen=True)
class Keyring:
    """Digests of every secret the service accepts, by role."""

    webhook: list[str]
    read: list[str]
    admin: list[str]

    @classmethod
    def from_settings(
        cls, settings: Settings, generated_webhook: str | None, generated_admin: str | None
    ) -> Keyring:
        def digests(secrets: list[str]) -> list[str]:
            return [credentials.digest(s) for s in secrets]

        webhook = digests([k.get_secret_value() for k in settings.webhook_keys])
        admin = digests([t.get_secret_value() for t in settings.admin_tokens])
        read = digests([t.get_secret_value() for t in settings.ops_tokens])
        if not webhook and generated_webhook:
            webhook = [generated_webhook]
        if not admin and not read and generated_admin:
            admin = [generated_admin]
        return cls(webhook, read, admin)

    @property
    def complete(self) -> bool:
        return bool(self.webhook) and bool(self.admin or self.read)


def announce(generated: credentials.Generated, variable: str) -> None:
    """Show a freshly generated secret once, on the terminal, never in the structured log."""
    label = "webhook key" if generated.kind == credentials.WEBHOOK_KEY else "admin token"
    sys.stderr.write(
        f"\n  Generated {label} (shown only now; set {variable} to use your own):\n"
        f"    {generated.secret}\n\n"
    )
    sys.stderr.flush()


def load_keyring(settings: Settings, db: Database) -> Keyring:
    """Every secret the service accepts; generates the missing ones (schema must be at head)."""
    needs_webhook = not settings.webhook_keys
    needs_admin = not settings.admin_tokens and not settings.ops_tokens
    if not (needs_webhook or needs_admin) or migrate.schema_problem(db) is not None:
        return Keyring.from_settings(settings, None, None)
    with db.transaction() as conn:
        webhook = credentials.ensure(conn, credentials.WEBHOOK_KEY) if needs_webhook else None
        admin = credentials.ensure(conn, credentials.ADMIN_TOKEN) if needs_admin else None
    if webhook and webhook.secret:
        announce(webhook, "INVSYNC_WEBHOOK_KEYS")
    if admin and admin.secret:
        announce(admin, "INVSYNC_ADMIN_TOKENS")
    return Keyring.from_settings(
        settings, webhook.sha256 if webhook else None, admin.sha256 if admin else None
    )


def current_keyring(request: Request) -> Keyring:
    """The app's keyring, completed from the database if it could not be at start-up.

    Without it a service started while its database was down would refuse every key with 401,
    which NewStore may treat as a reason to stop the stream; this raises DatabaseUnavailable
    (503, retried) instead until the generated credentials can be read.
    """
    keyring: Keyring = request.app.state.keyring
    if keyring.complete:
        return keyring
    keyring = load_keyring(request.app.state.settings, request.app.state.db)
    if not keyring.complete and (
        not request.app.state.settings.webhook_keys
        and migrate.schema_problem(request.app.state.db) is not None
    ):
        raise DatabaseUnavailable("schema not at head; credentials unavailable")
    request.app.state.keyring = keyring
    return keyring


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


_bearer = HTTPBearer(auto_error=False, description="An ops token, or an admin token.")


def require_read(
    request: Request,
    presented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Any ops or admin token. Returns the role."""
    keyring = current_keyring(request)
    if presented is None:
        raise Unauthorized()
    if credentials.matches(presented.credentials, keyring.admin):
        return "admin"
    if credentials.matches(presented.credentials, keyring.read):
        return "read"
    raise Unauthorized()


def require_admin(role: Annotated[str, Depends(require_read)]) -> str:
    if role != "admin":
        raise Forbidden("this endpoint changes state and needs an admin token")
    return role


ReadAccess = Annotated[str, Depends(require_read)]
AdminAccess = Annotated[str, Depends(require_admin)]
