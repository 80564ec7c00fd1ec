"""The FastAPI application, built from a `Settings` by `create_app()`: the composition root."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from inventory_sync import __version__
from inventory_sync.api import console, intake
from inventory_sync.api.auth import load_keyring
from inventory_sync.api.docs import serve_docs
from inventory_sync.api.problems import component_schemas, register_error_handlers
from inventory_sync.api.request_id import RequestIdMiddleware
from inventory_sync.api.routes import events, health, ledger, metrics, reconciliation, sync
from inventory_sync.api.schemas import IntakeAnswer
from inventory_sync.credentials import Keyring
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.intake.classify import Rules
from inventory_sync.intake.recent import RecentBodies
from inventory_sync.observability import logs
from inventory_sync.observability.metrics import DatabaseCollector
from inventory_sync.observability.traffic import TRAFFIC
from inventory_sync.settings import ConfigurationError, Settings, load_settings
from inventory_sync.storage.store import Store, open_store

log = logging.getLogger("inventory_sync.app")

# Connections intake writes on at once (PostgreSQL). More only queue in the server: on a few
# cores the rate peaks with about this many (docs/performance.md).
INTAKE_CONNECTIONS = 8
OPENAPI_URL = "/openapi.json"


async def prepare(settings: Settings, store: Store) -> Keyring:
    """Make the schema usable where the service may (the embedded SQLite default) and load the
    credentials it accepts, generating the missing ones."""
    problem = await store.prepare()
    if problem is not None:
        # Served anyway: /readyz and every webhook answer 503 with the reason until an
        # operator migrates, which may be under way (docker-compose.yml runs it beside).
        log.error("app.schema_behind", extra={"reason": problem})
    return await load_keyring(settings, store)


def _declare_intake(app: FastAPI) -> None:
    """Add the webhook's operation, served by `intake.IntakeEndpoint`, to the OpenAPI
    document, as FastAPI would have declared it for a route, with the schemas it names."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(intake.SECURITY_SCHEMES)
        named = {**component_schemas(IntakeAnswer), **intake.body_schemas()}
        known = components.setdefault("schemas", {})
        clashes = [name for name in named if name in known and known[name] != named[name]]
        if clashes:
            raise RuntimeError(f"two schemas named {clashes} in the OpenAPI document")
        known.update(named)
        schema["paths"] = {intake.PATH: {"post": intake.operation()}, **schema["paths"]}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class Service(FastAPI):
    """The API: FastAPI, except that the webhook is answered before FastAPI's middleware and
    routing (`api.intake`), wrapped only by the request id."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._intake = RequestIdMiddleware(intake.IntakeEndpoint())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if intake.serves(scope):
            scope["app"] = self
            await self._intake(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    """Build the API. The ERP sync worker runs in a process of its own (`erp_sync.supervisor`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_store(settings.database_url, pool_size=INTAKE_CONNECTIONS)
        try:
            keyring = await prepare(settings, store)
        except DatabaseUnavailable as error:
            # Start anyway: /readyz says why, and intake answers 503 until the database is back.
            log.warning("app.database_unavailable_at_start", extra={"error": str(error)[:200]})
            keyring = Keyring.from_settings(settings, None, None)
        app.state.settings = settings
        app.state.store = store
        app.state.keyring = keyring
        app.state.rules = Rules.from_settings(settings)
        app.state.recent_bodies = RecentBodies()
        app.state.metrics_collector = DatabaseCollector(store.database)
        summary = asyncio.create_task(TRAFFIC.summarise())
        try:
            yield
        finally:
            summary.cancel()
            await store.close()

    docs = settings.api_docs
    app = Service(
        title="newstore-inventory-sync",
        version=__version__,
        description="NewStore inventory events in; an append-only ledger and ERP documents out.",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves them without a CDN
        redoc_url=None,
        openapi_url=OPENAPI_URL if docs else None,
        # A redirect would build its Location from the request's Host header; a path with a
        # trailing slash is simply not found (the webhook answers either way: api.intake).
        redirect_slashes=False,
    )
    _declare_intake(app)
    register_error_handlers(app)
    if docs:
        serve_docs(app, OPENAPI_URL)
    app.add_middleware(RequestIdMiddleware)
    for routes in (events, ledger, sync, reconciliation, health, metrics):
        app.include_router(routes.router)
    console.install(app)
    return app


def app_factory() -> FastAPI:
    """uvicorn's factory for `inventory-sync serve`: the app of the environment's settings."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        sys.stderr.write(f"configuration error: {error}\n")
        raise SystemExit(2) from None
    logs.configure(settings)
    app = create_app(settings)
    # What is loaded by now lives as long as the process: keep it out of the cyclic collector,
    # whose full passes over it stalled every request for about 100 ms.
    gc.collect()
    gc.freeze()
    return app
