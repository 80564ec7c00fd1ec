"""The whole path into a real Tryton: NewStore events through the webhook, the ERP sync
worker with the tryton adapter, and Tryton's own stock compared with `/v1/stock`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories as f
from tests.erp_sync.conftest import make_worker, run
from tests.tryton import kit, stream

pytestmark = pytest.mark.xdist_group("tryton")


def tryton_settings(settings: Settings, server: kit.Server, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "erp_adapter": "tryton",
        "erp_url": server.url,
        "erp_user": kit.LOGIN,
        "erp_password": SecretStr(server.password),
        "erp_concurrency": 2,
        "erp_timeout_seconds": 30,
        "erp_retry_base_seconds": 0.05,
        "erp_retry_max_seconds": 0.5,
    }
    values.update(more)
    return settings.model_copy(update=values)


# One backend per Tryton test keeps them within their time: this one on SQLite, the crash and
# reconciliation tests on PostgreSQL.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tryton_holds_what_v1_stock_says_after_a_redelivered_reordered_stream(
    client: TestClient,
    settings: Settings,
    db: Database,
    tryton_server: kit.Server,
    tryton: kit.Client,
) -> None:
    products = tryton.new_products(4)
    bodies = stream.events(products, seed=5)
    answers = [f.post(client, body)["status"] for body in stream.deliveries(bodies, seed=5)]
    assert answers.count("accepted") == len(bodies)
    assert set(answers) == {"accepted", "duplicate"}

    run(make_worker(tryton_settings(settings, tryton_server), db).drain(timeout=120))

    messages = client.get(
        "/v1/sync/messages", params={"limit": 1000}, headers=f.read_headers()
    ).json()["items"]
    assert {m["status"] for m in messages} == {"delivered"}
    assert len(messages) == len(bodies)
    stream.assert_tryton_holds(tryton, f.stock(client), products)
