"""Plain functions that build NewStore events and post them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient

WEBHOOK_KEY = "test-webhook-key"
READ_TOKEN = "test-read-token"
ADMIN_TOKEN = "test-admin-token"
TENANT = "acme"
STORE = "US-NYC-01"


def new_id() -> str:
    return str(uuid.uuid4())


def envelope(name: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "tenant": TENANT,
        "name": name,
        "published_at": "2024-05-14T09:32:18.402Z",
        "payload": payload,
    }
    body.update(extra)
    return body


def lines(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"product_id": p, "quantity": q} for p, q in pairs]


def received(*pairs: tuple[str, int], **payload: Any) -> dict[str, Any]:
    body = {
        "id": new_id(),
        "fulfillment_location_id": STORE,
        "processed_at": "2024-05-14T09:31:55.117Z",
        "chunk_number": 1,
        "total_chunks": 1,
        "items": lines(*pairs),
    }
    body.update(payload)
    return envelope("inventory_transaction.items_received", body)


def adjustment(*pairs: tuple[str, int], **payload: Any) -> dict[str, Any]:
    body = {
        "id": new_id(),
        "fulfillment_node_id": STORE,
        "adjustment_type": "Damage out",
        "adjustment_reason": "Damaged",
        "origin_stock_location_name": "main",
        "destination_stock_location_name": "damaged",
        "processed_at": "2024-05-15T11:19:41.866Z",
        "chunk_number": 1,
        "total_chunks": 1,
        "items": lines(*pairs),
    }
    body.update(payload)
    return envelope("inventory_transaction.adjustment_created", body)


def handover(*pairs: tuple[str, int], **payload: Any) -> dict[str, Any]:
    body = {
        "id": new_id(),
        "fulfillment_location_id": STORE,
        "transfer_order_ref": "TO1",
        "shipment_ref": "SHIP1",
        "processed_at": "2024-05-14T15:00:47.310Z",
        "chunk_number": 1,
        "total_chunks": 1,
        "items": lines(*pairs),
    }
    body.update(payload)
    return envelope("inventory_transaction.items_ready_for_handover", body)


def asn(*pairs: tuple[str, int], **payload: Any) -> dict[str, Any]:
    body = {
        "id": new_id(),
        "chunk_number": 1,
        "origin_id": STORE,
        "transfer_order_ref": "TO1",
        "shipment_ref": "SHIP1",
        "shipment_date": "2024-05-14T15:02:11.000Z",
        "items": lines(*pairs),
    }
    body.update(payload)
    return envelope("inventory_transaction.asn_created", body)


def counted(*triples: tuple[str, int, int], **payload: Any) -> dict[str, Any]:
    """Lines are (product_id, count, stock_on_hand)."""
    body = {
        "id": new_id(),
        "count_type": "cycle_count",
        "fulfillment_location_id": STORE,
        "completed_at": "2024-05-20T16:05:21.181Z",
        "chunk_number": 1,
        "total_chunks": 1,
        "items": [{"product_id": p, "count": c, "stock_on_hand": s} for p, c, s in triples],
    }
    body.update(payload)
    return envelope("inventory_count.items_counted", body)


def returned(*lines_: dict[str, Any], **payload: Any) -> dict[str, Any]:
    body = {
        "id": new_id(),
        "order_id": new_id(),
        "returned_at": "2024-05-16T13:43:58.633Z",
        "return_location_id": STORE,
        "items": list(lines_),
    }
    body.update(payload)
    return envelope("return.processed", body)


def sold(*products: str, logical_timestamp: int = 1715871761377, **payload: Any) -> dict[str, Any]:
    """A `fulfillment_request.items_completed`: one line per unit sold, no quantity."""
    body = {
        "id": new_id(),
        "order_id": new_id(),
        "logical_timestamp": logical_timestamp,
        "fulfillment_location_id": STORE,
        "associate_id": "3b9f1c2a7d4e4f0a9c8b6e5d4c3b2a10",
        "service_level": "IN_STORE_HANDOVER",
        "items": [{"id": new_id(), "product_id": p} for p in products],
    }
    body.update(payload)
    return envelope("fulfillment_request.items_completed", body)


def webhook_headers(key: str = WEBHOOK_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def read_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {READ_TOKEN}"}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def post(client: TestClient, body: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """Post one event and return the JSON answer, asserting HTTP 200."""
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    response = client.post("/webhooks/newstore", content=content, headers=webhook_headers())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ledger(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    """Every ledger movement matching the filters, following cursors."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, **filters}
    while True:
        page = client.get("/v1/ledger", params=params, headers=read_headers()).json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


def stock(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, **filters}
    while True:
        page = client.get("/v1/stock", params=params, headers=read_headers()).json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


def post_raw(
    client: TestClient, content: bytes | str, headers: dict[str, str] | None = None
) -> Any:
    """Post a body as-is with the webhook key; returns the response, whatever its status."""
    return client.post("/webhooks/newstore", content=content, headers=headers or webhook_headers())


def event(client: TestClient, event_id: int) -> dict[str, Any]:
    response = client.get(f"/v1/events/{event_id}", headers=read_headers())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def raw(client: TestClient, event_id: int) -> Any:
    return client.get(f"/v1/events/{event_id}/raw", headers=read_headers())


def events(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, **filters}
    while True:
        page = client.get("/v1/events", params=params, headers=read_headers()).json()
        items.extend(page["items"])
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]
