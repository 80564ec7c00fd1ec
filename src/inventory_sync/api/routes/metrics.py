"""`GET /metrics`, for Prometheus."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBearer

from inventory_sync import credentials
from inventory_sync.api.auth import Presented, Unauthorized
from inventory_sync.api.problems import responses
from inventory_sync.observability.metrics import DatabaseCollector, exposition
from inventory_sync.settings import Settings

router = APIRouter(tags=["health"])
_metrics_token = HTTPBearer(
    scheme_name="MetricsToken",
    auto_error=False,
    description="`INVSYNC_METRICS_TOKEN`; asked for only when it is set.",
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **responses("unauthorized"),
    },
    # The token is asked for only when INVSYNC_METRICS_TOKEN is set: `{}`, added to the
    # scheme the dependency declares, says that none may do.
    openapi_extra={"security": [{}]},
)
def scrape(request: Request, presented: Annotated[Presented, Depends(_metrics_token)]) -> Response:
    """Prometheus exposition. It names no secret, id or tenant; with `INVSYNC_METRICS_TOKEN`
    set it needs that token as a bearer token."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        expected = [credentials.digest(settings.metrics_token.get_secret_value())]
        if presented is None or not credentials.matches(presented.credentials, expected):
            raise Unauthorized
    collector: DatabaseCollector = request.app.state.metrics_collector
    body, media_type = exposition(collector)
    return Response(body, media_type=media_type)
