"""Schema-driven fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, with valid credentials so they reach the handlers:
no answer may be a 5xx, answers must conform to the documented status codes, content types
and schemas, and nothing rejected may change the ledger. Bounded and derandomized for CI.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import ledger_movement
from tests import factories as f

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def ledger_state(db: Database) -> tuple[int, int]:
    m = ledger_movement.c
    with db.snapshot() as conn:
        query = select(func.count(), func.coalesce(func.sum(m.quantity), 0))
        count, total = conn.execute(query).one()
    return int(count), int(total)


def seed(client: TestClient) -> None:
    """Rows for the generated ids to find: accepted, quarantined and ignored events."""
    for n in range(3):
        assert f.post(client, f.received((f"SKU-{n}", n + 1)))["status"] == "accepted"
    assert f.post(client, f.received(("NEG", -1)))["status"] == "quarantined"
    assert f.post(client, f.envelope("order.created", {"id": "o1"}))["status"] == "ignored"


class Fuzzer:
    """Sends generated cases through the in-process app and checks every answer."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client, self.db = client, db
        self.tried: dict[str, int] = {}
        self.ledger = ledger_state(db)

    def operation(self, operation: Any) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        secret = f.WEBHOOK_KEY if operation.path.startswith("/webhooks") else f.ADMIN_TOKEN
        headers = {"Authorization": f"Bearer {secret}"}

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            kwargs.pop("cookies", None)
            response = self.client.request(**kwargs)
            self.tried[label] = self.tried.get(label, 0) + 1
            case.validate_response(response, checks=CHECKS)
            after = ledger_state(self.db)
            accepted = response.status_code == 200 and '"status":"accepted"' in response.text
            if not accepted:
                assert after == self.ledger, (label, response.status_code, response.text[:300])
            self.ledger = after

        check()


def test_no_generated_request_yields_5xx_or_changes_the_ledger(
    client: TestClient, db: Database
) -> None:
    seed(client)
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    fuzzer = Fuzzer(client, db)
    for result in schema.get_all_operations():
        fuzzer.operation(result.ok())
    total = sum(fuzzer.tried.values())
    print(f"schemathesis: {total} requests over {len(fuzzer.tried)} operations")
    assert len(fuzzer.tried) >= 19
    assert total >= 19 * 10
