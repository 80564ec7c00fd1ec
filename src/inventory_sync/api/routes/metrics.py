"""`GET /metrics`, for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from inventory_sync.observability.metrics import DatabaseCollector, exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(request: Request) -> Response:
    """Prometheus exposition. Needs no token: it names no secret, id or tenant."""
    collector: DatabaseCollector = request.app.state.metrics_collector
    body, media_type = exposition(collector)
    return Response(body, media_type=media_type)
