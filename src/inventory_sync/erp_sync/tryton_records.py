"""Tryton's records for NewStore's ids, as the tryton adapter books and reads with them.

A location id is the warehouse coded with it; `main` is that warehouse's storage location, any
other stock location the storage location coded `<location id>/<stock location>`; a product is
the product coded with its id; all as `INVSYNC_ERP_MAPPING` maps them. Suppliers and customers
are the party coded NEWSTORE (or as mapped). Tryton's ids are kept while the worker runs; a code
Tryton does not have is looked up again at each attempt, so creating the record in Tryton is
enough to unblock a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from inventory_sync.erp_sync import mapping as erp_mapping
from inventory_sync.erp_sync.tryton_plan import CUSTOMER, LOST_FOUND, MAIN, SUPPLIER, TRANSIT
from inventory_sync.erp_sync.tryton_rpc import TrytonRefused, TrytonRpc

PARTY_CODE = "NEWSTORE"


@dataclass(frozen=True)
class Warehouse:
    id: int
    storage: int
    input: int
    output: int
    lost_found: int | None


@dataclass(frozen=True)
class Product:
    id: int
    unit: int
    cost_price: Any


class TrytonRecords:
    def __init__(self, rpc: TrytonRpc, mapping: erp_mapping.Mapping) -> None:
        self.rpc = rpc
        self.mapping = mapping
        self._warehouses: dict[str, Warehouse] = {}
        self._locations: dict[str, int] = {}
        self._products: dict[str, Product] = {}
        self._fixed: dict[str, Any] = {}

    async def warehouse(self, location_id: str) -> Warehouse:
        code = self.mapping.location(location_id)
        if code not in self._warehouses:
            names = ["storage_location", "input_location", "output_location", "lost_found_location"]
            row = await self._location(code, "warehouse", names, f"location {location_id!r}")
            storage, input_, output, lost_found = (row[name] for name in names)
            self._warehouses[code] = Warehouse(row["id"], storage, input_, output, lost_found)
        return self._warehouses[code]

    async def stock_location(self, location_id: str, stock_location: str) -> int:
        """Tryton's location for a NewStore stock location: `main` is the warehouse's storage,
        any other the location coded `<location id>/<stock location>` (or as mapped)."""
        if stock_location == MAIN:
            return (await self.warehouse(location_id)).storage
        code = self.mapping.stock_location(location_id, stock_location)
        if code not in self._locations:
            what = f"stock location {location_id}/{stock_location}"
            self._locations[code] = (await self._location(code, "storage", [], what))["id"]
        return self._locations[code]

    async def _location(self, code: str, kind: str, names: list[str], what: str) -> dict[str, Any]:
        """The one Tryton location of this type and code, or TrytonRefused saying `what`."""
        rows = await self.rpc.model(
            "stock.location",
            "search_read",
            [("code", "=", code), ("type", "=", kind)],
            0,
            2,
            None,
            ["id", *names],
        )
        if len(rows) != 1:
            many = "no" if not rows else "more than one"
            label = "warehouse" if kind == "warehouse" else f"{kind} location"
            raise TrytonRefused(f"{what}: {many} Tryton {label} coded {code!r}")
        found: dict[str, Any] = rows[0]
        return found

    async def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        wanted = {p: self.mapping.product(p) for p in product_ids}
        missing = sorted({code for code in wanted.values() if code not in self._products})
        if missing:
            rows = await self.rpc.model(
                "product.product",
                "search_read",
                [("code", "in", missing)],
                0,
                None,
                None,
                ["code", "default_uom", "cost_price"],
            )
            for row in rows:
                self._products[row["code"]] = Product(
                    row["id"], row["default_uom"], row["cost_price"]
                )
        unknown = sorted(p for p, code in wanted.items() if code not in self._products)
        if unknown:
            raise TrytonRefused(self.unknown_products(unknown))
        return {p: self._products[code] for p, code in wanted.items()}

    def unknown_products(self, product_ids: list[str]) -> str:
        """The reason given for products Tryton does not know, each with its mapped code."""
        names = [
            repr(p) + (f" (mapped to {code!r})" if (code := self.mapping.product(p)) != p else "")
            for p in product_ids
        ]
        return f"no Tryton product coded as product {', '.join(names)}"

    async def place(self, place: str, location_id: str, warehouse: Warehouse) -> int:
        if place == LOST_FOUND:
            if warehouse.lost_found is not None:
                return warehouse.lost_found
            return await self._fixed_location(LOST_FOUND)
        if place in (SUPPLIER, CUSTOMER):
            party = await self.party()
            return int(party[f"{place}_location"])
        if place == TRANSIT:
            return await self._fixed_location(TRANSIT)
        return await self.stock_location(location_id, place)

    async def _fixed_location(self, kind: str) -> int:
        if kind not in self._fixed:
            if kind == TRANSIT:
                (config,) = await self.rpc.model(
                    "stock.configuration", "read", [1], ["shipment_internal_transit"]
                )
                found = config["shipment_internal_transit"]
            else:
                rows = await self.rpc.model(
                    "stock.location", "search", [("type", "=", kind)], 0, 1, None
                )
                found = rows[0] if rows else None
            if not found:
                raise TrytonRefused(f"Tryton has no {kind.replace('_', ' and ')} location")
            self._fixed[kind] = found
        return int(self._fixed[kind])

    @property
    def party_code(self) -> str:
        return self.mapping.party or PARTY_CODE

    async def party(self) -> dict[str, Any]:
        if "party" not in self._fixed:
            rows = await self.rpc.model(
                "party.party",
                "search_read",
                [("code", "=", self.party_code)],
                0,
                1,
                None,
                ["supplier_location", "customer_location", "addresses"],
            )
            if not rows:
                raise TrytonRefused(f"no Tryton party coded {self.party_code!r}")
            self._fixed["party"] = rows[0]
            self._fixed[SUPPLIER] = rows[0]["supplier_location"]
            self._fixed[CUSTOMER] = rows[0]["customer_location"]
        party: dict[str, Any] = self._fixed["party"]
        return party

    async def currency(self) -> int:
        if "currency" not in self._fixed:
            company = self.rpc.context.get("company")
            if not company:
                raise TrytonRefused("the Tryton user has no company in its preferences")
            (row,) = await self.rpc.model("company.company", "read", [company], ["currency"])
            self._fixed["currency"] = row["currency"]
        return int(self._fixed["currency"])
