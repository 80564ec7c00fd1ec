"""A worker killed with SIGKILL in the middle of booking a document in a real Tryton: the
document is finished once the lease runs out, never booked twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from inventory_sync.storage.store import open_database
from tests.reliability import harness as h
from tests.tryton import kit, stream

pytestmark = pytest.mark.xdist_group("tryton")

MODELS = (
    "stock.shipment.in",
    "stock.shipment.internal",
    "stock.shipment.out",
    "stock.shipment.out.return",
)


def unfinished(tryton: kit.Client, message_ids: list[str]) -> list[dict[str, object]]:
    """Shipments of these messages that Tryton has not done yet."""
    found = []
    for model in MODELS:
        found += tryton.call(
            model, "search_read",
            [("reference", "in", message_ids), ("state", "!=", "done")], 0, None, None, ["state"],
        )  # fmt: skip
    return found


def test_a_worker_killed_mid_booking_leaves_tryton_exact(
    tmp_path: Path, own_postgres: str, tryton_server: kit.Server, tryton: kit.Client
) -> None:
    products = tryton.new_products(4)
    bodies = stream.events(products, seed=9)
    env = {
        "INVSYNC_RETURN_LOCATIONS": '{"2": "damaged"}',
        "INVSYNC_ERP_ADAPTER": "tryton",
        "INVSYNC_ERP_USER": kit.LOGIN,
        "INVSYNC_ERP_PASSWORD": tryton_server.password,
        "INVSYNC_ERP_CONCURRENCY": "2",
        # Bounds a whole booking; the lease after a kill is 2 x 2 s + 10 s.
        "INVSYNC_ERP_TIMEOUT_SECONDS": "2",
    }
    api = h.Api(own_postgres, tmp_path, **env)
    worker = h.WorkerProcess(own_postgres, tryton_server.url, tmp_path, **env)
    db = open_database(own_postgres, pool_size=1)
    try:
        api.start()
        worker.start()
        sender = h.Sender([api.url], bodies, duplicate_share=0.3, seed=9).start()
        sender.join(timeout=60)
        assert sender.stats.acknowledged == sender.total

        # Killed while a shipment of ours is created but not yet done in Tryton.
        h.wait_until(
            lambda: unfinished(tryton, list(h.outbox_ids(db))), 60, "a booking under way", 0.005
        )
        worker.kill()
        worker.start()
        # The killed worker's claims come back when their lease runs out.
        h.wait_until(
            lambda: set(h.outbox_ids(db).values()) == {"delivered"}, 90, "every document booked"
        )

        ids = list(h.outbox_ids(db))
        assert len(ids) == len(bodies)
        assert unfinished(tryton, ids) == []
        stock = httpx.get(
            f"{api.url}/v1/stock",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {h.READ_TOKEN}"},
        ).json()["items"]
        stream.assert_tryton_holds(tryton, stock, products)
    finally:
        api.stop()
        worker.stop()
        db.dispose()
    for log in (api.log, worker.log):
        assert not h.secrets_in(log), f"a secret appears in {log}"
        assert tryton_server.password not in log.read_text(), f"the ERP password is in {log}"
