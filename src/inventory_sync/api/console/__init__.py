"""The ops console: server-rendered pages under `/console` for the people who run the sync.

Pages read through `views/`, actions go through `ops/`, `intake/` and `erp_sync/` as the API's
do; sign-in takes the API's ops and admin tokens. Templates and static files ship in the
package: nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from inventory_sync.api.console import actions, pages

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
