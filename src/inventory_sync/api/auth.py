"""Bearer authentication of the ops API, and the keyring every request is checked against."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State

from inventory_sync import credentials
from inventory_sync.credentials import Keyring
from inventory_sync.errors import DatabaseUnavailable, ServiceError
from inventory_sync.settings import Settings
from inventory_sync.storage import migrate
from inventory_sync.storage.store import Store

log = logging.getLogger("inventory_sync.auth")


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str = "missing or invalid bearer token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


# Where a generated secret goes when no terminal is there to show it on, in the working
# directory; written as `VARIABLE=secret` lines, the format of a `.env` file.
CREDENTIALS_FILE = "inventory-sync.credentials"


def announce(generated: credentials.Generated, variable: str) -> None:
    """Show a freshly generated secret once: on the terminal when there is one; else (a
    container, a service manager, whose output ends up in log stores) in a file only its owner
    can read, whose path is logged. Never in the log itself."""
    label = "webhook key" if generated.kind == credentials.WEBHOOK_KEY else "admin token"
    if sys.stderr.isatty():
        sys.stderr.write(
            f"\n  Generated {label} (shown only now; set {variable} to use your own):\n"
            f"    {generated.secret}\n\n"
        )
        sys.stderr.flush()
        return
    path = Path(CREDENTIALS_FILE).resolve()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a") as file:
            os.fchmod(descriptor, 0o600)  # should the file have been there already
            file.write(f"{variable}={generated.secret}\n")
    except OSError as error:
        log.error(
            "credentials.generated_not_shown",
            extra={"credential": label, "variable": variable, "error": str(error)},
        )
        return
    log.warning(
        "credentials.generated",
        extra={"credential": label, "variable": variable, "file": str(path)},
    )


async def load_keyring(settings: Settings, store: Store) -> Keyring:
    """Every secret the service accepts; generates the missing ones (schema must be at head)."""
    needs_webhook = not settings.webhook_keys
    needs_admin = not settings.admin_tokens and not settings.ops_tokens
    if not (needs_webhook or needs_admin):
        return Keyring.from_settings(settings, None, None)
    if await _schema_problem(store) is not None:
        return Keyring.from_settings(settings, None, None)
    webhook = admin = None
    if needs_webhook:
        kind = credentials.WEBHOOK_KEY
        webhook = await store.ensure_credential(kind, credentials.new_secret(kind))
        if webhook.secret:
            announce(webhook, "INVSYNC_WEBHOOK_KEYS")
    if needs_admin:
        kind = credentials.ADMIN_TOKEN
        admin = await store.ensure_credential(kind, credentials.new_secret(kind))
        if admin.secret:
            announce(admin, "INVSYNC_ADMIN_TOKENS")
    return Keyring.from_settings(
        settings, webhook.sha256 if webhook else None, admin.sha256 if admin else None
    )


async def _schema_problem(store: Store) -> str | None:
    return await anyio.to_thread.run_sync(migrate.schema_problem, store.database)


async def current_keyring(state: State) -> Keyring:
    """The app's keyring (`state`: the app's), completed from the database if it could not be
    at start-up.

    Without it a service started while its database was down would refuse every key with 401,
    which NewStore may treat as a reason to stop the stream; this raises DatabaseUnavailable
    (503, retried) instead until the generated credentials can be read.
    """
    keyring: Keyring = state.keyring
    if keyring.complete:
        return keyring
    settings: Settings = state.settings
    keyring = await load_keyring(settings, state.store)
    if not keyring.complete and not settings.webhook_keys:
        if await _schema_problem(state.store) is not None:
            raise DatabaseUnavailable("schema not at head; credentials unavailable")
    state.keyring = keyring
    return keyring


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


# Two names for the one bearer header, so that the OpenAPI document says which tokens each
# operation takes: reads take either kind (FastAPI lists a route's schemes as alternatives),
# changes an admin token only.
_ops_token = HTTPBearer(
    scheme_name="OpsToken",
    auto_error=False,
    description="A token of `INVSYNC_OPS_TOKENS`: reads the ops API.",
)
_admin_token = HTTPBearer(
    scheme_name="AdminToken",
    auto_error=False,
    description="A token of `INVSYNC_ADMIN_TOKENS`: reads the ops API and changes state "
    "(replay, dismiss, retry).",
)
Presented = HTTPAuthorizationCredentials | None


async def _role(request: Request, presented: Presented) -> str:
    keyring = await current_keyring(request.app.state)
    if presented is None:
        raise Unauthorized()
    role = keyring.role(presented.credentials)
    if role is None:
        raise Unauthorized()
    return role


async def require_read(
    request: Request,
    presented: Annotated[Presented, Depends(_ops_token)],
    _same_header: Annotated[Presented, Depends(_admin_token)],
) -> str:
    """Any ops or admin token. Returns the role."""
    return await _role(request, presented)


async def require_admin(
    request: Request, presented: Annotated[Presented, Depends(_admin_token)]
) -> str:
    role = await _role(request, presented)
    if role != "admin":
        raise Forbidden("this endpoint changes state and needs an admin token")
    return role


def admin_name(
    _role: Annotated[str, Depends(require_admin)],
    presented: Annotated[Presented, Depends(_admin_token)],
) -> str:
    """Who an admin request is, as far as a token can say: the start of its SHA-256, which
    tells tokens apart in an audit trail without revealing any."""
    assert presented is not None  # require_admin refused the request otherwise
    return f"admin token {credentials.digest(presented.credentials)[:8]}"


ReadAccess = Annotated[str, Depends(require_read)]
AdminAccess = Annotated[str, Depends(require_admin)]
AdminName = Annotated[str, Depends(admin_name)]
