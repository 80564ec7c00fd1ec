"""The FastAPI application, built from a `Settings` by `create_app()`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from inventory_sync import __version__, health, logs, metrics, migrate
from inventory_sync.auth import Keyring, load_keyring
from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.erp_sync import router as erp_sync_router
from inventory_sync.errors import register_error_handlers
from inventory_sync.events import router as events_router
from inventory_sync.ledger import router as ledger_router
from inventory_sync.reconciliation import router as reconciliation_router
from inventory_sync.settings import Settings
from inventory_sync.webhooks import router as webhook_router
from inventory_sync.webhooks.recent import RecentBodies
from inventory_sync.webhooks.service import Rules

log = logging.getLogger("inventory_sync.app")

# Threads that may hold a database connection for intake at once; matches the pool size.
INTAKE_THREADS = 16


def prepare(settings: Settings, db: Database) -> Keyring:
    """Create the embedded schema if needed and load the credentials the service accepts."""
    if db.is_sqlite:
        migrate.upgrade(db)
    return load_keyring(settings, db)


def create_app(settings: Settings) -> FastAPI:
    """Build the API. The ERP sync worker runs in a process of its own (`erp_sync.process`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=INTAKE_THREADS)
        try:
            keyring = await anyio.to_thread.run_sync(prepare, settings, db)
        except DatabaseUnavailable as error:
            # Start anyway: /readyz says why, and intake answers 503 until the database is back.
            log.warning("app.database_unavailable_at_start", extra={"error": str(error)[:200]})
            keyring = Keyring.from_settings(settings, None, None)
        app.state.settings = settings
        app.state.db = db
        app.state.keyring = keyring
        app.state.rules = Rules(frozenset(settings.tenants), dict(settings.return_locations))
        app.state.intake_limiter = anyio.CapacityLimiter(INTAKE_THREADS)
        app.state.recent_bodies = RecentBodies()
        try:
            yield
        finally:
            db.dispose()

    app = FastAPI(
        title="newstore-inventory-sync",
        version=__version__,
        description="NewStore inventory events in; an append-only ledger and ERP documents out.",
        lifespan=lifespan,
    )
    register_error_handlers(app)
    # Added last, so outermost: request ids also cover what FastPath answers itself.
    app.add_middleware(webhook_router.FastPath)
    app.add_middleware(logs.RequestIdMiddleware)
    app.include_router(webhook_router.router)
    app.include_router(events_router.router)
    app.include_router(ledger_router.router)
    app.include_router(erp_sync_router.router)
    app.include_router(reconciliation_router.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app
