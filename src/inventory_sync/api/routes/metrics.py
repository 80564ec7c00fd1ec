"""`GET /metrics`, for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from inventory_sync import credentials
from inventory_sync.api.auth import Unauthorized, bearer_token
from inventory_sync.observability.metrics import DatabaseCollector, exposition
from inventory_sync.settings import Settings

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(request: Request) -> Response:
    """Prometheus exposition. It names no secret, id or tenant; with `INVSYNC_METRICS_TOKEN`
    set it needs that token as a bearer token."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        token = bearer_token(request.headers.get("authorization"))
        expected = [credentials.digest(settings.metrics_token.get_secret_value())]
        if token is None or not credentials.matches(token, expected):
            raise Unauthorized
    collector: DatabaseCollector = request.app.state.metrics_collector
    body, media_type = exposition(collector)
    return Response(body, media_type=media_type)
