"""`POST /webhooks/newstore` is answered in front of FastAPI's routing (`IntakeEndpoint`); every
other request is FastAPI's, and the OpenAPI document declares the webhook like a route."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from inventory_sync.api.app import create_app
from inventory_sync.settings import Settings
from tests import factories as f

URL = "/webhooks/newstore"


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the requests FastAPI's routes handle from now on."""
    seen: list[str] = []
    handle = APIRoute.handle

    async def recording(self: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", recording)
    return seen


def test_the_webhook_is_answered_before_fastapi_routing(
    client: TestClient, routed: list[str]
) -> None:
    response = client.post(
        URL, content=json.dumps(f.received(("A", 2))), headers=f.webhook_headers()
    )
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert response.headers["x-request-id"]
    refused = client.post(URL, content="{}", headers=f.webhook_headers("wrong"))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert routed == []

    assert [m["quantity"] for m in f.ledger(client)] == [2]
    assert routed == ["/v1/ledger"]  # the probe sees what FastAPI serves


def test_other_methods_and_paths_are_fastapis(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    assert "post" in app.openapi()["paths"][URL]

    response = client.get(URL, headers=f.webhook_headers())
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"]


def test_a_trailing_slash_is_the_webhook_too_and_nothing_redirects(client: TestClient) -> None:
    body = json.dumps(f.received(("A", 1)))
    slash = client.post(URL + "/", content=body, headers=f.webhook_headers())
    assert slash.status_code == 200
    assert slash.json()["status"] == "accepted"
    listing = client.get("/v1/events/", headers=f.read_headers(), follow_redirects=False)
    assert listing.status_code == 404
    assert "location" not in listing.headers


def test_a_root_path_is_honoured(settings: Settings) -> None:
    with TestClient(create_app(settings), root_path="/sync") as client:
        answer = client.post(
            "/sync" + URL, content=json.dumps(f.received(("A", 1))), headers=f.webhook_headers()
        )
        assert answer.status_code == 200
        assert answer.json()["status"] == "accepted"
