"""ERP-side reconciliation against a real Tryton: `GET /v1/reconciliation/erp` and
`inventory-sync erp-reconcile` list where Tryton's stock differs from ours."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from inventory_sync.api.app import create_app
from inventory_sync.cli.main import cli
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories as f
from tests.erp_sync.conftest import make_worker, run
from tests.tryton import kit
from tests.tryton.test_end_to_end import tryton_settings

pytestmark = pytest.mark.xdist_group("tryton")

NYC = kit.STORES[0]


@pytest.fixture
def erp_settings(settings: Settings, tryton_server: kit.Server) -> Settings:
    return tryton_settings(settings, tryton_server)


@pytest.fixture
def erp_client(erp_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(erp_settings)) as test_client:
        yield test_client


def compare(client: TestClient, **filters: str) -> dict[str, object]:
    answer = client.get("/v1/reconciliation/erp", params=filters, headers=f.read_headers())
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_differences_are_listed_by_the_endpoint_and_the_command(
    erp_client: TestClient,
    erp_settings: Settings,
    db: Database,
    tryton: kit.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = tryton.new_products(2)
    ghost = f"{a}-GHOST"
    for body in (
        f.received((a, 5), (b, 3)),
        f.adjustment((a, 2)),
        f.received((ghost, 1)),
    ):
        assert f.post(erp_client, body)["status"] == "accepted"
    run(make_worker(erp_settings, db).drain(timeout=60))

    # In step, except the product Tryton does not know (its receipt is dead, naming it).
    assert compare(erp_client) == {
        "adapter": "tryton",
        "compared": 4,
        "items": [
            {
                "location_id": NYC,
                "stock_location": "main",
                "product_id": ghost,
                "on_hand": 1,
                "erp_quantity": None,
                "difference": None,
                "reason": f"no Tryton product coded as product {ghost!r}",
            }
        ],
    }

    tryton.find_more(NYC, "main", b, 2)  # a correction in Tryton NewStore never heard of
    assert compare(erp_client, product_id=b)["items"] == [
        {
            "location_id": NYC,
            "stock_location": "main",
            "product_id": b,
            "on_hand": 3,
            "erp_quantity": 5,
            "difference": 2,
            "reason": None,
        }
    ]

    for name, value in {
        "INVSYNC_DATABASE_URL": erp_settings.database_url,
        "INVSYNC_ERP_ADAPTER": "tryton",
        "INVSYNC_ERP_URL": str(erp_settings.erp_url),
        "INVSYNC_ERP_USER": kit.LOGIN,
        "INVSYNC_ERP_PASSWORD": tryton.server.password,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["erp-reconcile", "--location-id", NYC], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "2 of 4 positions differ in the ERP" in result.output
    assert b in result.output
    assert "+2" in result.output
    agreeing = CliRunner().invoke(cli, ["erp-reconcile", "--product-id", a])
    assert (agreeing.exit_code, agreeing.output.strip()) == (
        0,
        "2 positions compared: the ERP agrees with every one",
    )
