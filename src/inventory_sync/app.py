"""The FastAPI application, built from a `Settings` by `create_app()`."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from inventory_sync import __version__, credentials, health, migrate
from inventory_sync.auth import Keyring
from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.errors import register_error_handlers
from inventory_sync.events import router as events_router
from inventory_sync.ledger import router as ledger_router
from inventory_sync.settings import Settings
from inventory_sync.webhooks import router as webhook_router
from inventory_sync.webhooks.service import Rules

log = logging.getLogger("inventory_sync.app")

# Threads that may hold a database connection for intake at once; matches the pool size.
INTAKE_THREADS = 16


def announce(generated: credentials.Generated, variable: str) -> None:
    """Show a freshly generated secret once, on the terminal, never in the structured log."""
    label = "webhook key" if generated.kind == credentials.WEBHOOK_KEY else "admin token"
    sys.stderr.write(
        f"\n  Generated {label} (shown only now; set {variable} to use your own):\n"
        f"    {generated.secret}\n\n"
    )
    sys.stderr.flush()


def prepare(settings: Settings, db: Database) -> Keyring:
    """Create the embedded schema if needed and load the credentials the service accepts."""
    if db.is_sqlite:
        migrate.upgrade(db)
    generated_webhook = generated_admin = None
    needs_webhook = not settings.webhook_keys
    needs_admin = not settings.admin_tokens and not settings.ops_tokens
    if (needs_webhook or needs_admin) and migrate.schema_problem(db) is None:
        with db.transaction() as conn:
            if needs_webhook:
                webhook = credentials.ensure(conn, credentials.WEBHOOK_KEY)
                generated_webhook = webhook.sha256
            if needs_admin:
                admin = credentials.ensure(conn, credentials.ADMIN_TOKEN)
                generated_admin = admin.sha256
        if needs_webhook and webhook.secret:
            announce(webhook, "INVSYNC_WEBHOOK_KEYS")
        if needs_admin and admin.secret:
            announce(admin, "INVSYNC_ADMIN_TOKENS")
    return Keyring.from_settings(settings, generated_webhook, generated_admin)


def create_app(settings: Settings, *, run_worker: bool = False) -> FastAPI:
    """Build the API. `run_worker` also runs the ERP sync worker inside this process."""

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
        app.state.run_worker = run_worker
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
    app.include_router(webhook_router.router)
    app.include_router(events_router.router)
    app.include_router(ledger_router.router)
    app.include_router(health.router)
    return app
