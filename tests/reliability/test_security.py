"""Security: constant-time key checks, no secret ever logged or echoed, roles enforced.

Existing coverage elsewhere, not repeated here: every /v1 route refuses missing and wrong
tokens and read tokens get 403 on state-changing routes (tests/ops/test_roles.py); SQL-looking,
unicode and control-character ids round-trip verbatim (tests/intake/test_bad_input.py); bodies
are bounded before they are read, over a real socket too (tests/intake/test_webhook.py).
"""

from __future__ import annotations

import hmac
import inspect
import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inventory_sync import credentials
from inventory_sync.api import intake
from inventory_sync.observability import logs
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import outbox_message
from tests import factories as f
from tests.ops.test_replay import quarantine

CONFIGURED = (f.WEBHOOK_KEY, "previous-webhook-key", f.READ_TOKEN, f.ADMIN_TOKEN)
WRONG = ("wrong-secret-5f1c9e", "Basic " + f.ADMIN_TOKEN)


class TestConstantTime:
    def test_every_digest_is_compared_with_compare_digest(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[tuple[str, str]] = []
        real = hmac.compare_digest

        def counting(a: str, b: str) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(credentials.hmac, "compare_digest", counting)
        known = [credentials.digest(s) for s in ("one", "two", "three")]
        assert credentials.matches("one", known)  # the first matches, all are still compared
        assert len(calls) == 3
        assert [b for _, b in calls] == known
        # Digests, not the secrets, are compared: equal lengths whatever is presented.
        assert all(a == credentials.digest("one") for a, _ in calls)
        calls.clear()
        assert not credentials.matches("x" * 5000, known)
        assert len(calls) == 3

    def test_every_entry_point_checks_through_matches(self) -> None:
        for function in (credentials.Keyring.role, intake.authenticated):
            source = inspect.getsource(function)
            assert "matches(" in source, function
            assert "==" not in source.replace("!=", ""), function


@pytest.fixture
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    """The service's own log configuration, at debug level, writing into a buffer."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure(settings.model_copy(update={"log_level": "debug"}))
    buffer = io.StringIO()
    for handler in root.handlers:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_secrets_are_never_logged_or_echoed(client: TestClient, captured_logs: io.StringIO) -> None:
    seen: list[str] = []
    body = json.dumps(f.received(("A", 1)))
    for secret in (*CONFIGURED, *WRONG):
        for path in ("/webhooks/newstore",):
            response = client.post(
                path, content=body, headers={"Authorization": f"Bearer {secret}"}
            )
            seen.append(response.text + json.dumps(dict(response.headers)))
        for method, path in (("GET", "/v1/events"), ("POST", "/v1/events/1/replay")):
            response = client.request(method, path, headers={"Authorization": f"Bearer {secret}"})
            seen.append(response.text + json.dumps(dict(response.headers)))
    for path in ("/openapi.json", "/docs", "/redoc", "/metrics", "/readyz", "/healthz"):
        seen.append(client.get(path).text)
    assert seen[0].startswith('{"status":"accepted"')  # success paths were logged too
    logged = captured_logs.getvalue()
    assert "webhook.received" in logged
    for secret in (*CONFIGURED, WRONG[0]):
        assert secret not in logged, secret
        assert not [t for t in seen if secret in t], secret


def test_a_read_token_cannot_change_state(
    settings: Settings, client: TestClient, db: Database
) -> None:
    [held] = quarantine(settings, f.received(("C", 4)))
    attempts = [
        ("POST", f"/v1/events/{held}/replay"),
        ("POST", "/v1/sync/messages/retry"),
    ]
    assert f.post(client, f.received(("A", 1)))["status"] == "accepted"
    with db.snapshot() as conn:
        outbox_before = conn.execute(select(outbox_message)).all()
    for method, path in attempts:
        response = client.request(method, path, headers=f.read_headers())
        assert response.status_code == 403, (path, response.text)
    assert f.event(client, held)["status"] == "quarantined"
    with db.snapshot() as conn:
        assert conn.execute(select(outbox_message)).all() == outbox_before


def test_openapi_documents_the_errors_as_problems(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            for status in ("401", "422", "503"):
                content = operation["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
            if method != "get":
                assert "403" in operation["responses"], (method, path)
