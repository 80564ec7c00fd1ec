"""`POST /webhooks/newstore`: authenticate, bound, store, commit, then answer."""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy.engine import Connection
from starlette.types import ASGIApp, Receive, Scope, Send

from inventory_sync import auth, credentials, metrics
from inventory_sync.db import Database, DatabaseUnavailable, utcnow
from inventory_sync.errors import database_unavailable, problem
from inventory_sync.webhooks import recent, service
from inventory_sync.webhooks.recent import RecentBodies

log = logging.getLogger("inventory_sync.webhooks")
router = APIRouter(tags=["webhooks"])
PATH = "/webhooks/newstore"


# The normal case is recorded in the inbox and counted in /metrics; a log line per accepted
# event would be the noisiest and one of the costliest parts of intake. What needs a look is
# logged at the default level.
_LOG_LEVELS = {
    service.ACCEPTED: logging.DEBUG,
    service.DUPLICATE: logging.DEBUG,
    service.IGNORED: logging.INFO,
    service.QUARANTINED: logging.WARNING,
}


class IntakeAnswer(BaseModel):
    status: Literal["accepted", "duplicate", "ignored", "quarantined"]
    event_id: int | None
    detail: str | None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # NewStore always sends JSON; a missing header is not a reason to lose data
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _TooLarge(Exception):
    pass


async def _read_bounded(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes `limit`, never holding more."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _writing(db: Database) -> AbstractContextManager[Connection]:
    # On PostgreSQL each write of service.store() is one statement, atomic by itself, so it needs
    # no BEGIN/COMMIT round trips; on SQLite an accepted event takes several statements.
    return db.transaction() if db.is_sqlite else db.autocommit()


def process(
    db: Database, body: bytes, content_type: str | None, rules: service.Rules, seen: RecentBodies
) -> service.Outcome:
    """Classify and store one body; commits before returning. A body this process stored before
    is first checked against the database as a likely redelivery."""
    now = utcnow()
    try:
        digest = recent.digest(body)
        stored = seen.get(digest)
        if stored is not None:
            with db.snapshot() if db.is_sqlite else db.autocommit() as conn:
                duplicate = service.confirm_duplicate(conn, stored)
            if duplicate is not None:
                return duplicate
        item = service.classify(body, rules)
        with _writing(db) as conn:
            outcome = service.store(conn, item, body, content_type, now)
        if (where := service.stored_as(item)) is not None:
            seen.remember(digest, where)
        return outcome
    except DatabaseUnavailable:
        raise
    except Exception as error:
        # A bug or an unforeseen constraint must not lose an authenticated event or yield 500:
        # keep the raw body as quarantined, where replay can pick it up once fixed.
        log.exception("webhook.processing_failed")
        reason = f"could not be processed: {type(error).__name__}: {str(error)[:300]}"
        try:
            with db.transaction() as conn:
                return service.store_failure(conn, body, content_type, reason, now)
        except Exception as second:
            # Not even the raw body can be stored (e.g. the schema is missing): answer 503 so
            # NewStore redelivers; nothing was acknowledged.
            log.exception("webhook.store_failed")
            raise DatabaseUnavailable(f"cannot store events: {type(second).__name__}") from second


@router.post(
    PATH,
    response_model=IntakeAnswer,
    responses={
        401: {"description": "Missing or wrong webhook key."},
        413: {"description": "Body larger than INVSYNC_MAX_BODY_BYTES."},
        415: {"description": "Content-Type is not JSON."},
        503: {"description": "Database unavailable; NewStore will redeliver."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive(request: Request) -> Any:
    """Receive one NewStore Event Stream event.

    Answers only after the event is committed: `accepted`, `duplicate`, `ignored` or
    `quarantined` (stored with the reason, replayable), all with HTTP 200.
    """
    return await answer(request)


async def answer(request: Request) -> Response:
    """The answer to one webhook request; `FastPath` and the route above both serve it."""
    started = time.perf_counter()
    state = request.app.state
    keyring = state.keyring
    if not keyring.complete:
        try:
            keyring = await anyio.to_thread.run_sync(auth.current_keyring, request)
        except DatabaseUnavailable:
            metrics.WEBHOOK_REJECTED.labels("database_unavailable").inc()
            return database_unavailable()
    token = auth.bearer_token(request.headers.get("authorization"))
    if token is None or not credentials.matches(token, keyring.webhook):
        metrics.WEBHOOK_REJECTED.labels("unauthorized").inc()
        return problem(
            401,
            "missing or invalid webhook key",
            code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    content_type = request.headers.get("content-type")
    if not _is_json(content_type):
        metrics.WEBHOOK_REJECTED.labels("unsupported_media_type").inc()
        return problem(
            415,
            "the body must be JSON (Content-Type: application/json)",
            code="unsupported_media_type",
        )
    try:
        body = await _read_bounded(request, state.settings.max_body_bytes)
    except _TooLarge:
        metrics.WEBHOOK_REJECTED.labels("too_large").inc()
        return problem(
            413,
            f"body exceeds {state.settings.max_body_bytes} bytes",
            code="too_large",
            headers={"Connection": "close"},
        )
    try:
        outcome = await anyio.to_thread.run_sync(
            process,
            state.db,
            body,
            content_type,
            state.rules,
            state.recent_bodies,
            limiter=state.intake_limiter,
        )
    except DatabaseUnavailable as error:
        log.warning("webhook.database_unavailable", extra={"error": str(error)[:200]})
        metrics.WEBHOOK_REJECTED.labels("database_unavailable").inc()
        return database_unavailable()
    metrics.observe_intake(outcome.status, started, outcome.name)
    log.log(
        _LOG_LEVELS[outcome.status],
        "webhook.received",
        extra={"status": outcome.status, "event_id": outcome.event_id},
    )
    return JSONResponse(
        {"status": outcome.status, "event_id": outcome.event_id, "detail": outcome.detail}
    )


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class FastPath:
    """Serves `POST /webhooks/newstore` in front of FastAPI's routing and inner middleware.

    The webhook is the hot path: for every event, routing, the dependency machinery and four
    middleware layers cost more of the API process's Python time than any single step of
    intake (docs/performance.md). The route stays declared, so the OpenAPI document is
    unchanged, and it serves the same `answer()` should this class not be installed. Other
    methods and paths go on to FastAPI; `RequestIdMiddleware` still wraps both.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        try:
            response = await answer(Request(scope, receive))
        except sqlalchemy_exc.DBAPIError:
            # What the app's error handler answers for a database error.
            response = database_unavailable()
        await response(scope, receive, send)
