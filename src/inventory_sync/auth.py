"""Bearer authentication: webhook keys, read-only ops tokens and admin tokens.

Secrets are compared as SHA-256 digests with `hmac.compare_digest` against every known digest,
so neither timing nor the position of a key in the rotation list leaks anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from inventory_sync import credentials
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


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


_bearer = HTTPBearer(auto_error=False, description="An ops token, or an admin token.")


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def require_read(
    request: Request,
    presented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Any ops or admin token. Returns the role."""
    keyring = _keyring(request)
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
