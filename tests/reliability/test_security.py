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
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from inventory_sync import credentials
from inventory_sync.api import auth, intake, request_id
from inventory_sync.api.app import create_app
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
            answers = operation["responses"]
            assert {"401", "503"} <= set(answers), (method, path)
            takes = operation.get("parameters") or operation.get("requestBody")
            assert ("422" in answers) == bool(takes), (method, path)
            for status, answer in answers.items():
                if status[0] in "45":
                    assert list(answer["content"]) == ["application/problem+json"], (path, status)
            if method != "get":
                assert "403" in operation["responses"], (method, path)


class TestHeaders:
    def test_every_answer_carries_the_common_headers(self, client: TestClient) -> None:
        answers = [
            client.get("/healthz"),
            client.get("/nowhere"),
            client.get("/docs"),
            client.get("/v1/events"),  # 401
            client.get("/v1/events", headers=f.read_headers()),
            client.post(
                "/webhooks/newstore",
                content=json.dumps(f.received(("A", 1))),
                headers=f.webhook_headers(),
            ),
            client.post("/webhooks/newstore", content="{}"),  # 401, answered before FastAPI
            client.get("/webhooks/newstore"),  # 405
        ]
        for response in answers:
            for name, value in request_id.COMMON_HEADERS:
                assert response.headers[name.decode()] == value.decode(), response.url
            assert response.headers["x-request-id"]


class TestMetricsToken:
    def test_without_it_metrics_are_open(self, client: TestClient) -> None:
        assert client.get("/metrics").status_code == 200

    def test_with_it_metrics_need_it(self, settings: Settings) -> None:
        token = "metrics-" + "7" * 20
        guarded = settings.model_copy(update={"metrics_token": SecretStr(token)})
        with TestClient(create_app(guarded)) as client:
            assert client.get("/metrics").status_code == 401
            for wrong in (f.ADMIN_TOKEN, token + "x"):
                headers = {"Authorization": f"Bearer {wrong}"}
                assert client.get("/metrics", headers=headers).status_code == 401
            response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            assert "invsync_stored_events" in response.text


def test_the_api_docs_can_be_switched_off(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"api_docs": False}))) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404, path
        assert f.post(client, f.received(("A", 1)))["status"] == "accepted"


class TestGeneratedCredentials:
    GENERATED = credentials.Generated(credentials.WEBHOOK_KEY, "wk_" + "s" * 40, "digest")

    def test_without_a_terminal_they_go_to_a_file_only_its_owner_reads(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.chdir(tmp_path)
        with caplog.at_level(logging.INFO):
            auth.announce(self.GENERATED, "INVSYNC_WEBHOOK_KEYS")
            auth.announce(
                credentials.Generated(credentials.ADMIN_TOKEN, "at_" + "t" * 40, "digest"),
                "INVSYNC_ADMIN_TOKENS",
            )
        path = tmp_path / auth.CREDENTIALS_FILE
        assert path.read_text() == (
            f"INVSYNC_WEBHOOK_KEYS={'wk_' + 's' * 40}\nINVSYNC_ADMIN_TOKENS={'at_' + 't' * 40}\n"
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "s" * 40 not in capsys.readouterr().err
        assert "s" * 40 not in str([r.__dict__ for r in caplog.records])
        assert [getattr(r, "file", None) for r in caplog.records] == [str(path)] * 2

    def test_on_a_terminal_they_are_shown_and_no_file_is_written(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        screen = io.StringIO()
        screen.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr(auth.sys, "stderr", screen)
        auth.announce(self.GENERATED, "INVSYNC_WEBHOOK_KEYS")
        assert "wk_" + "s" * 40 in screen.getvalue()
        assert not (tmp_path / auth.CREDENTIALS_FILE).exists()

    def test_a_file_that_cannot_be_written_is_said_without_the_secret(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / auth.CREDENTIALS_FILE).mkdir()  # unwritable even for root
        monkeypatch.chdir(tmp_path)
        with caplog.at_level(logging.INFO):
            auth.announce(self.GENERATED, "INVSYNC_WEBHOOK_KEYS")
        [record] = caplog.records
        assert record.getMessage() == "credentials.generated_not_shown"
        assert record.levelno == logging.ERROR
        assert getattr(record, "variable", None) == "INVSYNC_WEBHOOK_KEYS"
        assert "s" * 40 not in str(record.__dict__)
