"""`POST /webhooks/newstore`: the one entry of every NewStore event.

Authenticate, check the media type, read the body within its bound, hand it to the use case
(`intake.service.receive`, which commits before it returns), answer. An ASGI endpoint of its
own, which the app calls before FastAPI's middleware and routing (`api.app.Service`): the
webhook is the hot path, and for every event those layers cost more of the process's time than
any single step of intake (docs/performance.md). The request-id middleware wraps it as it
wraps every route. The OpenAPI document declares the operation (`operation()`), so clients and
the fuzz tests see it like any route.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from pydantic import AliasChoices, BaseModel
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from inventory_sync import credentials
from inventory_sync.api.auth import bearer_token, current_keyring
from inventory_sync.api.problems import REF_TEMPLATE, database_unavailable, problem
from inventory_sync.api.problems import responses as problem_responses
from inventory_sync.credentials import Keyring
from inventory_sync.errors import DatabaseUnavailable, SchemaBehind
from inventory_sync.intake import service
from inventory_sync.intake.classify import Status
from inventory_sync.newstore import payloads
from inventory_sync.newstore.payloads import HANDLED_EVENT
from inventory_sync.observability import metrics
from inventory_sync.observability.traffic import TRAFFIC

log = logging.getLogger("inventory_sync.webhooks")
PATH = "/webhooks/newstore"

# The normal case is recorded in the inbox and counted in /metrics; a log line per accepted
# event would be the noisiest and one of the costliest parts of intake. What needs a look is
# logged at the default level.
_LOG_LEVELS = {
    Status.ACCEPTED: logging.DEBUG,
    Status.DUPLICATE: logging.DEBUG,
    Status.IGNORED: logging.INFO,
    Status.QUARANTINED: logging.WARNING,
}


SECURITY_SCHEMES = {
    "WebhookKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A key of `INVSYNC_WEBHOOK_KEYS` (or the one generated at first start).",
    }
}


def body_schemas() -> dict[str, Any]:
    """`HandledEvent` (`newstore.payloads.HANDLED_EVENT`) and every schema it names, for
    `components.schemas`. pydantic names a field that takes several names by the first; here
    the schema names them all and asks for one of them, as the models do."""
    handled = HANDLED_EVENT.json_schema(ref_template=REF_TEMPLATE)
    named: dict[str, Any] = {**handled.pop("$defs"), "HandledEvent": handled}
    for name, schema in named.items():
        model = getattr(payloads, name, None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for field in model.model_fields.values():
            alias = field.validation_alias
            if not isinstance(alias, AliasChoices) or len(alias.choices) < 2:
                continue
            first, *others = [str(choice) for choice in alias.choices]
            for other in others:
                schema["properties"][other] = schema["properties"][first]
            if first in schema.get("required", []):
                schema["required"].remove(first)
                one_of_them = [{"required": [choice]} for choice in (first, *others)]
                schema.setdefault("allOf", []).append({"anyOf": one_of_them})
    return named


def operation() -> dict[str, Any]:
    """The OpenAPI operation of the webhook. It names `IntakeAnswer` and `HandledEvent` (the
    handled events, `newstore.payloads.HANDLED_EVENT`) in `components.schemas`."""
    problems = problem_responses(
        "unauthorized",
        "too_large",
        "unsupported_media_type",
        "database_unavailable",
        "schema_behind",
    )
    body = {"$ref": REF_TEMPLATE.format(model="HandledEvent")}
    answer = {"$ref": REF_TEMPLATE.format(model="IntakeAnswer")}
    return {
        "tags": ["webhooks"],
        "summary": "Receive",
        "description": "Receive one NewStore Event Stream event.\n\n"
        "Answers only after the event is committed: `accepted`, `duplicate`, `ignored` or "
        "`quarantined` (stored with the reason, replayable), all with HTTP 200.",
        "operationId": "receive_webhooks_newstore_post",
        "security": [{"WebhookKey": []}],
        "requestBody": {
            "required": True,
            "description": "One of the events the service handles, chosen by `name`. A field "
            "with several names (a location) is read under the first one present; unknown "
            "fields are kept, not refused. An event of another name is answered `ignored`; a "
            "body that fits no schema is stored and answered `quarantined`: no body is refused.",
            "content": {"application/json": {"schema": body}},
        },
        "responses": {
            "200": {
                "description": "Stored, with its status.",
                "content": {"application/json": {"schema": answer}},
            },
            **{str(status): response for status, response in problems.items()},
        },
    }


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # NewStore always sends JSON; a missing header is not a reason to lose data
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _TooLarge(Exception):
    pass


async def _read_bounded(receive: Receive, declared: str | None, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes `limit`, never holding more."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def authenticated(authorization: str | None, keyring: Keyring) -> bool:
    """Whether the `Authorization` header carries one of the webhook keys."""
    token = bearer_token(authorization)
    return token is not None and credentials.matches(token, keyring.webhook)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


_schema_behind_said = False


def _log_unavailable(error: DatabaseUnavailable) -> None:
    """A schema behind the code is said once per process, as an error: every webhook until an
    operator migrates would say it again, and only the operator can end it."""
    global _schema_behind_said
    if not isinstance(error, SchemaBehind):
        log.warning("webhook.database_unavailable", extra={"error": str(error)[:200]})
    elif not _schema_behind_said:
        _schema_behind_said = True
        log.error("webhook.schema_behind", extra={"error": str(error)[:300]})


def serves(scope: Scope) -> bool:
    """Whether `IntakeEndpoint` answers this request."""
    return scope["type"] == "http" and _route_path(scope).rstrip("/") == PATH


class IntakeEndpoint:
    """Serves every request for `/webhooks/newstore`, with or without a trailing slash (a
    callback URL registered with one must not depend on NewStore following a redirect): POST
    is the webhook."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            refusal = problem(405, "Method Not Allowed", headers={"Allow": "POST"})
            await refusal(scope, receive, send)
            return
        try:
            await self._answer(scope, receive, send)
        except ClientDisconnect:
            return  # nothing was stored, and nobody is listening

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = scope["app"].state
        keyring = state.keyring
        if not keyring.complete:
            try:
                keyring = await current_keyring(state)
            except DatabaseUnavailable as error:
                _log_unavailable(error)
                metrics.WEBHOOK_REJECTED.labels("database_unavailable").inc()
                await database_unavailable(error)(scope, receive, send)
                return
        authorization = content_type = declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                declared = value.decode("latin-1")
        if not authenticated(authorization, keyring):
            metrics.WEBHOOK_REJECTED.labels("unauthorized").inc()
            refusal = problem(
                401,
                "missing or invalid webhook key",
                code="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        if not _is_json(content_type):
            metrics.WEBHOOK_REJECTED.labels("unsupported_media_type").inc()
            refusal = problem(
                415,
                "the body must be JSON (Content-Type: application/json)",
                code="unsupported_media_type",
            )
            await refusal(scope, receive, send)
            return
        limit: int = state.settings.max_body_bytes
        try:
            body = await _read_bounded(receive, declared, limit)
        except _TooLarge:
            metrics.WEBHOOK_REJECTED.labels("too_large").inc()
            refusal = problem(
                413,
                f"body exceeds {limit} bytes",
                code="too_large",
                headers={"Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        try:
            outcome = await service.receive(
                state.store, body, content_type, state.rules, state.recent_bodies
            )
        except DatabaseUnavailable as error:
            _log_unavailable(error)
            metrics.WEBHOOK_REJECTED.labels("database_unavailable").inc()
            await database_unavailable(error)(scope, receive, send)
            return
        metrics.observe_intake(outcome.status, started, outcome.name)
        TRAFFIC.count(outcome.status.value)
        log.log(
            _LOG_LEVELS[outcome.status],
            "webhook.received",
            extra={"status": outcome.status.value, "event_id": outcome.event_id},
        )
        answer = orjson.dumps(
            {"status": outcome.status.value, "event_id": outcome.event_id, "detail": outcome.detail}
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
