"""Query text PostgreSQL cannot store is a bad parameter (422), a forged cursor a bad cursor
(400) and a forged id a 4xx: never a database error, a 500 or a 503."""

from __future__ import annotations

import base64

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


# Each paginated listing and the parts of the position its cursor holds.
PAGED = {
    "/v1/events": 1,
    "/v1/ledger": 1,
    "/v1/stock": 4,
    "/v1/sync/messages": 1,
    "/v1/reconciliation/transfers": 2,
    "/v1/reconciliation/transfers/unmatched": 1,
    "/v1/reconciliation/counts": 1,
    "/v1/reconciliation/chunks": 3,
}
FORGED_PARTS = [2**63, -(2**63) - 1, 10**30, "\ud800", "A\udfff", True, 1.5, None, [1]]


class TestForgedCursors:
    @pytest.mark.parametrize("path", sorted(PAGED))
    def test_every_forged_position_is_a_bad_cursor(self, client: TestClient, path: str) -> None:
        f.post(client, f.received(("A", 1)))
        problems = []
        for part in FORGED_PARTS:
            for at in range(PAGED[path]):
                position: list[object] = [1 if PAGED[path] == 1 else "x"] * PAGED[path]
                position[at] = part
                # json.dumps writes a lone surrogate as its \\ud800 escape, as a forger would.
                cursor = pagination.encode(position)
                response = client.get(path, params={"cursor": cursor}, headers=f.read_headers())
                if response.status_code != 400 or "cursor" not in response.json()["detail"]:
                    problems.append((part, at, response.status_code, response.text[:100]))
        assert problems == []

    def test_a_cursor_nested_past_the_parser_is_a_bad_cursor(self, client: TestClient) -> None:
        nested = base64.urlsafe_b64encode(b"[" * 1500).decode()
        response = client.get("/v1/events", params={"cursor": nested}, headers=f.read_headers())
        assert response.status_code == 400

    def test_the_largest_valid_integer_is_a_cursor_like_any(self, client: TestClient) -> None:
        cursor = pagination.encode([2**63 - 1])
        response = client.get("/v1/events", params={"cursor": cursor}, headers=f.read_headers())
        assert response.status_code == 200
        assert response.json()["items"] == []


class TestForgedIds:
    @pytest.mark.parametrize("message_id", ["%00", "a%00b", "%C3%A9", "a%20b", "%ED%A0%80"])
    def test_a_message_id_no_service_issues_is_4xx(
        self, client: TestClient, message_id: str
    ) -> None:
        for method, suffix in (("GET", ""), ("POST", "/retry")):
            response = client.request(
                method, f"/v1/sync/messages/{message_id}{suffix}", headers=f.admin_headers()
            )
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("event_id", ["0", "-1", str(2**63), "1e3", "%00"])
    def test_an_event_id_out_of_range_is_4xx(self, client: TestClient, event_id: str) -> None:
        response = client.get(f"/v1/events/{event_id}", headers=f.read_headers())
        assert response.status_code == 422, response.text
