"""The tryton adapter against a real Tryton server: what each document books, once."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from inventory_sync.erp_sync.client import Outcome, Result
from inventory_sync.erp_sync.tryton import TrytonAdapter
from inventory_sync.settings import Settings
from tests.tryton import kit

pytestmark = pytest.mark.xdist_group("tryton")

STORE = kit.STORES[0]


def adapter_settings(server: kit.Server, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "erp_adapter": "tryton",
        "erp_url": server.url,
        "erp_user": kit.LOGIN,
        "erp_password": SecretStr(server.password),
        "erp_timeout_seconds": 30,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def document(kind: str, *lines: tuple[str, str, int], **references: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "location_id": STORE,
        "references": references,
        "lines": [
            {"product_id": p, "stock_location": where, "quantity_delta": q} for p, where, q in lines
        ],
    }


def send(settings: Settings, *documents: dict[str, Any], twice: bool = False) -> list[Result]:
    async def main() -> list[Result]:
        async with TrytonAdapter.from_settings(settings) as adapter:
            results = []
            for doc in documents:
                for _ in range(2 if twice else 1):
                    results.append(await adapter.send(doc["id"], json.dumps(doc)))
            return results

    return asyncio.run(main())


def delivered(results: list[Result]) -> None:
    assert [(r.outcome, r.error) for r in results] == [(Outcome.DELIVERED, None)] * len(results)


class TestBooking:
    def test_each_document_type_moves_the_stock_it_names_once(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        a, b = tryton.new_products(2)
        documents = [
            document("inventory.receipt", (a, "main", 10), (b, "main", 6)),
            document("inventory.receipt", (a, "main", 3), asn_id="ASN-1"),
            document("inventory.transfer_out", (a, "main", -2)),
            document("inventory.transfer_shipped", (a, "main", 0)),
            document("inventory.return", (b, "damaged", 2)),
            document("inventory.count", (a, "main", -1), (b, "main", 0)),
            document(
                "inventory.adjustment",
                (a, "main", -4),
                (a, "damaged", 4),
                origin_stock_location_name="main",
                destination_stock_location_name="damaged",
            ),
            document("inventory.adjustment", (b, "damaged", -1), origin_stock_location_name="d"),
            document("inventory.sale", (b, "main", -1)),
        ]

        # Every document delivered twice, as a redelivery after a lost answer would.
        delivered(send(adapter_settings(tryton_server), *documents, twice=True))

        assert tryton.quantities(STORE, "main", [a, b]) == {a: 6, b: 5}
        assert tryton.quantities(STORE, "damaged", [a, b]) == {a: 4, b: 1}
        # The shipments carry the message id, one of each kind per document.
        receipt, asn_receipt, _, shipped, ret, *_, sale = documents
        assert [s["state"] for s in tryton.shipments("stock.shipment.in", receipt["id"])] == [
            "done"
        ]
        assert len(tryton.shipments("stock.shipment.internal", asn_receipt["id"])) == 1
        assert len(tryton.shipments("stock.shipment.out.return", ret["id"])) == 1
        assert len(tryton.shipments("stock.shipment.internal", ret["id"])) == 1  # on to damaged
        assert len(tryton.shipments("stock.shipment.out", sale["id"])) == 1
        assert tryton.shipments("stock.shipment.internal", shipped["id"]) == []

    def test_a_delivery_cut_short_after_its_create_is_finished_not_booked_again(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        (a,) = tryton.new_products(1)
        doc = document(
            "inventory.adjustment", (a, "damaged", 5), destination_stock_location_name="x"
        )
        # What a worker killed between Tryton's create and its buttons leaves: a draft shipment.
        storage = tryton.location(STORE, "damaged")
        (lost_found,) = tryton.call(
            "stock.location", "search", [("type", "=", "lost_found")], 0, 1, None
        )
        (unit,) = tryton.call("product.uom", "search", [("symbol", "=", "u")], 0, 1, None)
        (product,) = tryton.call("product.product", "search", [("code", "=", a)], 0, 1, None)
        tryton.call(
            "stock.shipment.internal",
            "create",
            [
                {
                    "reference": doc["id"],
                    "from_location": lost_found,
                    "to_location": storage,
                    "moves": [["create", [{
                        "product": product, "unit": unit, "quantity": 5.0,
                        "from_location": lost_found, "to_location": storage,
                    }]]],
                }
            ],
        )  # fmt: skip

        delivered(send(adapter_settings(tryton_server), doc))

        assert tryton.quantities(STORE, "damaged", [a]) == {a: 5}
        assert [s["state"] for s in tryton.shipments("stock.shipment.internal", doc["id"])] == [
            "done"
        ]

    def test_a_booking_cut_off_by_the_timeout_is_retried_and_booked_once(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        (a,) = tryton.new_products(1)
        doc = document("inventory.return", (a, "damaged", 4), (a, "main", 1))

        [cut] = send(adapter_settings(tryton_server, erp_timeout_seconds=0.1), doc)
        assert (cut.outcome, cut.error) == (Outcome.RETRY, "timeout")
        delivered(send(adapter_settings(tryton_server), doc))

        assert tryton.quantities(STORE, "main", [a]) == {a: 1}
        assert tryton.quantities(STORE, "damaged", [a]) == {a: 4}


class TestRefusals:
    def test_an_unknown_product_is_dead_naming_it_and_retryable_once_it_exists(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        (known,) = tryton.new_products(1)
        missing = f"{known}-NEW"
        doc = document("inventory.receipt", (known, "main", 1), (missing, "main", 2))
        settings = adapter_settings(tryton_server)

        [result] = send(settings, doc)

        assert result.outcome is Outcome.DEAD
        assert result.error == f"no Tryton product coded as product {missing!r}"
        assert tryton.quantities(STORE, "main", [known]) == {known: 0}  # nothing half-booked
        template = tryton.call("product.product", "search_read", [("code", "=", known)], 0, 1,
                               None, ["template"])[0]["template"]  # fmt: skip
        tryton.call("product.product", "create", [{"template": template, "suffix_code": "-NEW"}])
        delivered(send(settings, doc))
        assert tryton.quantities(STORE, "main", [known, missing]) == {known: 1, missing: 2}

    def test_unknown_locations_are_dead_naming_them(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        (a,) = tryton.new_products(1)
        settings = adapter_settings(tryton_server)
        elsewhere = document("inventory.receipt", (a, "main", 1))
        elsewhere["location_id"] = "XX-NOWHERE"
        results = send(settings, elsewhere, document("inventory.return", (a, "repair", 1)))
        assert [(r.outcome, r.error) for r in results] == [
            (Outcome.DEAD, "location 'XX-NOWHERE': no Tryton warehouse coded 'XX-NOWHERE'"),
            (
                Outcome.DEAD,
                f"stock location {STORE}/repair: no Tryton storage location coded '{STORE}/repair'",
            ),
        ]

    def test_a_wrong_password_is_dead_and_a_server_away_is_retried(
        self, tryton_server: kit.Server
    ) -> None:
        doc = document("inventory.receipt", ("P", "main", 1))
        [refused] = send(adapter_settings(tryton_server, erp_password=SecretStr("wrong")), doc)
        assert (refused.outcome, refused.error) == (
            Outcome.DEAD,
            "Tryton refused the login of 'admin'",
        )
        away = f"http://127.0.0.1:{kit.free_port()}/{kit.DATABASE}/"
        [retry] = send(adapter_settings(tryton_server, erp_url=away), doc)
        assert retry.outcome is Outcome.RETRY
        assert str(retry.error).startswith("connection error")


class TestSessionAndMapping:
    def test_an_ended_session_logs_in_again(
        self, tryton_server: kit.Server, tryton: kit.Client
    ) -> None:
        (a,) = tryton.new_products(1)

        async def main() -> list[Result]:
            settings = adapter_settings(tryton_server)
            async with TrytonAdapter.from_settings(settings) as adapter:
                first = document("inventory.receipt", (a, "main", 1))
                results = [await adapter.send(first["id"], json.dumps(first))]
                # The server no longer knows the session (expired, or restarted).
                forgotten = base64.b64encode(b"admin:1:0000").decode()
                adapter.rpc._authorization = f"Session {forgotten}"
                second = document("inventory.receipt", (a, "main", 2))
                results.append(await adapter.send(second["id"], json.dumps(second)))
                return results

        delivered(asyncio.run(main()))
        assert tryton.quantities(STORE, "main", [a]) == {a: 3}

    def test_a_mapping_file_names_tryton_codes(
        self, tryton_server: kit.Server, tryton: kit.Client, tmp_path: Path
    ) -> None:
        (a,) = tryton.new_products(1)
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(
            f"locations: {{NYC: {STORE}}}\n"
            f"stock_locations: {{NYC/broken: {STORE}/damaged}}\n"
            f"products: {{SKU-A: {a}}}\n"
        )
        doc = document("inventory.return", ("SKU-A", "broken", 3))
        doc["location_id"] = "NYC"

        delivered(send(adapter_settings(tryton_server, erp_mapping=mapping), doc))

        assert tryton.quantities(STORE, "damaged", [a]) == {a: 3}
