"""`/healthz` (the process answers) and `/readyz` (database reachable, schema at head)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.schemas import Alive, NotReady, Ready
from inventory_sync.errors import DatabaseUnavailable
from inventory_sync.storage import migrate

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Alive)
def healthz() -> dict[str, str]:
    """Liveness: the process is up. Never touches the database."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": NotReady, "description": "Not ready, with the reason."}},
)
def readyz(db: DatabaseDep) -> Any:
    """Readiness: the database answers and its schema is at the migrations' head."""
    try:
        reason = migrate.schema_problem(db)
    except DatabaseUnavailable as error:
        reason = f"database unavailable: {error}"
    if reason is not None:
        return JSONResponse(
            {"status": "not_ready", "reason": reason},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return {"status": "ready", "schema": migrate.head()}
