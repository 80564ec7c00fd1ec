"""`GET /v1/reconciliation/erp` and `erp-reconcile` when the ERP's stock cannot be read: the
json adapter cannot, and a Tryton that does not answer is a 503 to try again."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from inventory_sync.api.app import create_app
from inventory_sync.cli.main import cli
from inventory_sync.settings import Settings
from tests import factories as f


def test_the_json_adapter_cannot_read_stock(client: TestClient) -> None:
    answer = client.get("/v1/reconciliation/erp", headers=f.read_headers())
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == (
        "the json adapter cannot read the ERP's stock; INVSYNC_ERP_ADAPTER=tryton can"
    )


def test_an_erp_that_does_not_answer_is_a_503_and_the_command_exits_2(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        away = f"http://127.0.0.1:{sock.getsockname()[1]}/db/"
    tryton = settings.model_copy(
        update={
            "erp_adapter": "tryton",
            "erp_url": away,
            "erp_user": "admin",
            "erp_password": SecretStr("pw"),
        }
    )
    with TestClient(create_app(tryton)) as client:
        assert f.post(client, f.received(("A", 1)))["status"] == "accepted"
        answer = client.get("/v1/reconciliation/erp", headers=f.read_headers())
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["detail"].startswith("the ERP did not answer: connection error")

    monkeypatch.setenv("INVSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("INVSYNC_ERP_ADAPTER", "json")
    result = CliRunner().invoke(cli, ["erp-reconcile"])
    assert result.exit_code == 2
    assert "cannot compare: the json adapter cannot read the ERP's stock" in result.output
