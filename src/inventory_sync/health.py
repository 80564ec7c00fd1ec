"""`/healthz` (the process answers) and `/readyz` (database reachable, schema at head)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from inventory_sync import migrate
from inventory_sync.db import Database, DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process is up. Never touches the database."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready, with the reason."}})
async def readyz(request: Request) -> Any:
    """Readiness: the database answers and its schema is at the migrations' head."""
    db: Database = request.app.state.db

    def check() -> str | None:
        try:
            return migrate.schema_problem(db)
        except DatabaseUnavailable as error:
            return f"database unavailable: {error}"

    reason = await anyio.to_thread.run_sync(check)
    if reason is not None:
        return JSONResponse(
            {"status": "not_ready", "reason": reason},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return {"status": "ready", "schema": migrate.head()}
