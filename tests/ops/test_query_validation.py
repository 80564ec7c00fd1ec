"""Query text PostgreSQL cannot store is a bad parameter (422), never a database error."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from inventory_sync.api import pagination
from tests import factories as f


class TestNulInQuery:
    @pytest.mark.parametrize(
        "path", ["/v1/events", "/v1/ledger", "/v1/stock", "/v1/reconciliation/transfers"]
    )
    def test_nul_in_a_text_filter_is_refused(self, client: TestClient, path: str) -> None:
        f.post(client, f.received(("A", 1)))
        field = "tenant"
        response = client.get(path, params={field: "ac\x00me"}, headers=f.read_headers())
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"

    def test_nul_inside_a_cursor_is_refused(self, client: TestClient) -> None:
        cursor = pagination.encode(["acme", "US\x00", "main", "A"])
        response = client.get("/v1/stock", params={"cursor": cursor}, headers=f.read_headers())
        assert response.status_code == 400
        assert "cursor" in response.json()["detail"]
