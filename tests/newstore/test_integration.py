"""`inventory-sync newstore register|status|pause|resume` against a local NewStore: exactly what
is sent, idempotence, NewStore's errors, and no credential in any output or log line."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote_plus, urlencode

import pytest
from typer.testing import CliRunner

from inventory_sync.cli.main import cli
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.newstore_api import client
from tests import factories as f
from tests.newstore import fake as ns
from tests.newstore.fake import FakeNewStore

CALLBACK = "https://sync.example.com/webhooks/newstore"
TOKEN = "ns-fixed-access-token-91b2"


SECRETS = (ns.CLIENT_SECRET, ns.CLIENT_ID, TOKEN, f.WEBHOOK_KEY, "previous-webhook-key")


@pytest.fixture(autouse=True)
def every_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """Everything logged, httpx's and httpcore's debug lines too, for the secret checks."""
    caplog.set_level(logging.DEBUG)


def assert_no_secret(text: str, newstore: FakeNewStore) -> None:
    for secret in (*SECRETS, *newstore.tokens):
        assert secret not in text


def wanted_body() -> dict[str, object]:
    return {
        "callback_parameters": {"callback_url": CALLBACK, "api_key": f.WEBHOOK_KEY},
        "filter_conditions": {"event_filter": sorted(HANDLED), "entity_filter": []},
    }


class TestRegister:
    def test_creates_with_the_handled_events_then_changes_nothing(
        self, runner: CliRunner, newstore: FakeNewStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        first = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK, "--json"])
        assert first.exit_code == 0, first.output
        assert json.loads(first.stdout)["action"] == "created"
        token_call, *api = newstore.calls
        assert token_call.method == "POST"
        assert token_call.body == {
            "grant_type": "client_credentials",
            "client_id": ns.CLIENT_ID,
            "client_secret": ns.CLIENT_SECRET,
        }
        (token,) = newstore.tokens
        assert {c.headers["authorization"] for c in api} == {f"Bearer {token}"}
        assert [(c.method, c.path) for c in api] == [
            ("GET", f"{ns.INTEGRATIONS}/inventory-sync"),
            ("POST", ns.INTEGRATIONS),
            ("GET", f"{ns.INTEGRATIONS}/inventory-sync"),
        ]
        assert api[1].body == {"id": "inventory-sync", "integration_type": "permanent"} | (
            wanted_body()
        )
        # the code's one list of handled names, nothing else
        assert api[1].body["filter_conditions"]["event_filter"] == sorted(HANDLED)
        assert "inventory_count.items_counted" in HANDLED

        again = runner.invoke(cli, ["newstore", "register", "--json"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["action"] == "unchanged"
        assert [c.method for c in newstore.changes()] == ["POST"]
        assert_no_secret(first.output + again.output + caplog.text, newstore)

    def test_updates_key_callback_and_filter_in_place(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        newstore.add_integration(
            id="inventory-sync",
            integration_type="permanent",
            callback_parameters={"callback_url": "https://old.example.com/hook", "api_key": "old"},
        )
        monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", "rotated-key,test-webhook-key")
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 0, result.output
        assert "updated" in result.stdout
        (patch,) = newstore.changes()
        assert (patch.method, patch.path) == ("PATCH", f"{ns.INTEGRATIONS}/inventory-sync")
        body = wanted_body()
        body["callback_parameters"] = {"callback_url": CALLBACK, "api_key": "rotated-key"}
        assert patch.body == body
        assert "rotated-key" not in result.output

    def test_creating_needs_a_callback_url_and_a_configured_key(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        missing_url = runner.invoke(cli, ["newstore", "register"])
        assert missing_url.exit_code == 2
        assert "--callback-url" in missing_url.output
        monkeypatch.delenv("INVSYNC_WEBHOOK_KEYS")
        no_key = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert no_key.exit_code == 2
        assert "INVSYNC_WEBHOOK_KEYS" in no_key.output
        assert newstore.changes() == []

    def test_a_tenant_the_service_would_refuse_is_warned_of(
        self, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INVSYNC_TENANTS", "globex")
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 0, result.output
        assert "INVSYNC_TENANTS does not name acme" in result.stderr

    def test_missing_newstore_settings_are_named(
        self, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("INVSYNC_NEWSTORE_URL")
        monkeypatch.delenv("INVSYNC_NEWSTORE_CLIENT_ID")
        monkeypatch.delenv("INVSYNC_NEWSTORE_CLIENT_SECRET")
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 2
        assert "INVSYNC_NEWSTORE_URL" in result.output
        assert "INVSYNC_NEWSTORE_TOKEN" in result.output


class TestStatus:
    def test_shows_filter_gaps_and_a_key_we_would_refuse_without_showing_it(
        self, runner: CliRunner, newstore: FakeNewStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        newstore.add_integration(
            id="inventory-sync",
            integration_type="permanent",
            callback_parameters={"callback_url": CALLBACK, "api_key": "a-key-we-never-had"},
            filter_conditions={"event_filter": ["order.created", "return.processed"]},
        )
        newstore.add_integration(
            id="inventory-sync-replay-20240501T000000Z-20240502T000000Z",
            integration_type="temporary",
            status="stopped",
            starts_at="2024-05-01T00:00:00Z",
            ends_at="2024-05-02T00:00:00Z",
            callback_parameters={"callback_url": CALLBACK, "api_key": f.WEBHOOK_KEY},
        )
        result = runner.invoke(cli, ["newstore", "status", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        integration = data["integration"]
        assert integration["status"] == "running"
        assert integration["api_key_accepted"] is False
        assert integration["filter_extra"] == ["order.created"]
        assert set(integration["filter_missing"]) == HANDLED - {"return.processed"}
        assert [r["id"] for r in data["replays"]] == [
            "inventory-sync-replay-20240501T000000Z-20240502T000000Z"
        ]
        table = runner.invoke(cli, ["newstore", "status"], env={"COLUMNS": "200"})
        assert table.exit_code == 0
        assert "NO: every event would be refused" in table.stdout
        for output in (result.output, table.output, caplog.text):
            assert "a-key-we-never-had" not in output
            assert_no_secret(output, newstore)

    def test_no_integration_says_what_to_do(self, runner: CliRunner) -> None:
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "inventory-sync newstore register" in result.output


class TestPauseResume:
    def test_stop_and_start_only_when_needed(
        self, runner: CliRunner, newstore: FakeNewStore
    ) -> None:
        newstore.add_integration(
            id="inventory-sync",
            integration_type="permanent",
            callback_parameters={"callback_url": CALLBACK, "api_key": f.WEBHOOK_KEY},
        )
        paused = runner.invoke(cli, ["newstore", "pause", "--json"])
        assert json.loads(paused.stdout) == {
            "id": "inventory-sync",
            "status": "stopped",
            "changed": True,
        }
        again = runner.invoke(cli, ["newstore", "pause"])
        assert again.exit_code == 0
        assert "(already)" in again.stdout
        resumed = runner.invoke(cli, ["newstore", "resume"])
        assert "running" in resumed.stdout
        assert [(c.method, c.path) for c in newstore.changes()] == [
            ("POST", f"{ns.INTEGRATIONS}/inventory-sync/_stop"),
            ("POST", f"{ns.INTEGRATIONS}/inventory-sync/_start"),
        ]
        assert all(c.body is None for c in newstore.changes())

    def test_unknown_integration(self, runner: CliRunner, newstore: FakeNewStore) -> None:
        result = runner.invoke(cli, ["newstore", "resume"])
        assert result.exit_code == 1
        assert "no integration inventory-sync" in result.output
        assert newstore.changes() == []


class TestNewStoreAnswers:
    def test_rate_limit_is_waited_out(self, runner: CliRunner, newstore: FakeNewStore) -> None:
        newstore.rate_limited = 3
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 0, result.output
        gets = [c for c in newstore.api_calls() if c.method == "GET"]
        assert len(gets) == 5  # three refused, then the lookup and the read back

    def test_endless_rate_limit_gives_up_with_the_reason(
        self, runner: CliRunner, newstore: FakeNewStore
    ) -> None:
        newstore.rate_limited = 1000
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "NewStore answered 429" in result.output
        assert "rate limit exceeded" in result.output

    def test_an_expired_token_is_renewed_once(
        self, runner: CliRunner, newstore: FakeNewStore
    ) -> None:
        newstore.add_integration(
            id="inventory-sync",
            callback_parameters={"callback_url": CALLBACK, "api_key": f.WEBHOOK_KEY},
        )
        newstore.expire_next = True
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 0, result.output
        assert [c.path for c in newstore.calls].count(ns.TOKEN_PATH) == 2

    def test_a_refused_token_is_a_401_line_without_the_token(
        self,
        runner: CliRunner,
        newstore: FakeNewStore,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        monkeypatch.delenv("INVSYNC_NEWSTORE_CLIENT_ID")
        monkeypatch.delenv("INVSYNC_NEWSTORE_CLIENT_SECRET")
        monkeypatch.setenv("INVSYNC_NEWSTORE_TOKEN", TOKEN)
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "NewStore answered 401" in result.output
        assert "INVSYNC_NEWSTORE_TOKEN" in result.output
        assert newstore.calls[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert_no_secret(result.output + caplog.text, newstore)

    def test_refused_client_credentials(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INVSYNC_NEWSTORE_CLIENT_SECRET", "wrong-secret-5d1e")
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "token endpoint refused the API client (401" in result.output
        assert "wrong-secret-5d1e" not in result.output
        assert newstore.api_calls() == []

    def test_unreachable_newstore(self, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INVSYNC_NEWSTORE_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("INVSYNC_NEWSTORE_TOKEN", TOKEN)
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "cannot reach NewStore at http://127.0.0.1:9" in result.output
        assert TOKEN not in result.output


class TestEchoedSecrets:
    """A NewStore (or a proxy before it) that echoes the request back in its error: every
    secret the client sent is hidden, in the form it was sent."""

    def test_a_fetched_token_echoed_in_a_401(
        self, runner: CliRunner, newstore: FakeNewStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        newstore.echo = {"GET": 401}
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "NewStore answered 401" in result.output
        assert "Bearer ***" in result.output
        assert len(newstore.tokens) == 2  # renewed once, both echoed
        assert_no_secret(result.output + caplog.text, newstore)

    def test_the_webhook_key_echoed_from_a_post_body_in_a_500(
        self, runner: CliRunner, newstore: FakeNewStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        newstore.echo = {"POST": 500}
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 1
        assert '"api_key":"***"' in result.output
        assert_no_secret(result.output + caplog.text, newstore)

    def test_a_key_echoed_json_escaped(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        key = 'webhook-"quoted"-\\-kéy'
        monkeypatch.setenv("INVSYNC_WEBHOOK_KEYS", key)
        newstore.echo = {"POST": 500}
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 1
        assert '"api_key":"***"' in result.output
        assert "quoted" not in result.output

    def test_a_secret_echoed_url_encoded_by_the_token_endpoint(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        secret = "S3cr3t+/abc=="
        monkeypatch.setenv("INVSYNC_NEWSTORE_CLIENT_SECRET", secret)
        newstore.echo_token = True
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "client_id=***&client_secret=***" in result.output
        assert quote_plus(secret) not in result.output
        assert secret not in result.output

    def test_a_secret_where_the_message_is_cut(
        self, runner: CliRunner, newstore: FakeNewStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        secret = "Zq" * 20
        monkeypatch.setenv("INVSYNC_NEWSTORE_CLIENT_SECRET", secret)
        sent = urlencode(
            {"grant_type": "client_credentials", "client_id": ns.CLIENT_ID, "client_secret": ""}
        )
        newstore.echo_token = True
        # NewStore's words are "invalid_client <padding><form>...": the secret starts six
        # characters before they are cut
        newstore.echo_padding = client.REASON_CHARS - 6 - len("invalid_client ") - len(sent)
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "x" * 100 in result.output
        assert secret[:6] not in result.output


class TestAnswersThatAreNotJson:
    """A 2xx page that is not JSON (a proxy's sign-in page) is NewStore's error line."""

    def test_register(self, runner: CliRunner, newstore: FakeNewStore) -> None:
        newstore.not_json = True
        result = runner.invoke(cli, ["newstore", "register", "--callback-url", CALLBACK])
        assert result.exit_code == 1
        assert "NewStore answered 200 to GET" in result.output
        assert "with a body that is not JSON" in result.output
        assert "--callback-url" not in result.output

    def test_status(self, runner: CliRunner, newstore: FakeNewStore) -> None:
        newstore.not_json = True
        result = runner.invoke(cli, ["newstore", "status"])
        assert result.exit_code == 1
        assert "with a body that is not JSON" in result.output
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)
