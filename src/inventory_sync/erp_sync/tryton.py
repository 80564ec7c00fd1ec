"""The `tryton` adapter: each ERP document booked as Tryton shipments (PRODUCT.md section 7.1).

A document's lines are signed quantities at the store's stock locations. Each becomes a move
between that location and the counterpart its type names (supplier, transit, customer, lost and
found), or, for an adjustment from one stock location to another, between the two. Moves are
grouped into the shipments Tryton books them with, because a move out of storage can only be
done through a shipment's assignment, and only shipments keep an external reference:

| moves | shipment | steps |
|---|---|---|
| supplier -> storage | `stock.shipment.in` | receive, do |
| customer -> storage | `stock.shipment.out.return` | receive, do |
| storage -> customer | `stock.shipment.out` | wait, assign, pick, pack, do |
| between storage, transit and lost and found | `stock.shipment.internal` | wait, assign, do |

A supplier's or customer's goods arrive at (or leave from) the warehouse's storage location;
one bound for another stock location is moved on by an internal shipment in the same document.

Idempotency: every shipment of a document carries the message id as its `reference`, and is
created together with its moves in one call. Before booking, the adapter looks the reference
up: a shipment already there is driven on from the state it is in (a delivery cut short after
its `create` is finished, never booked twice), and only the missing ones are created. An
assignment is forced when stock is short, as NewStore's own stock may go below Tryton's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from inventory_sync.erp_sync import mapping as erp_mapping
from inventory_sync.erp_sync.client import Outcome, Result
from inventory_sync.erp_sync.tryton_rpc import TrytonRefused, TrytonRpc, TrytonUnavailable
from inventory_sync.settings import Settings

MAIN = "main"
INTERNAL = "stock.shipment.internal"
IN = "stock.shipment.in"
OUT = "stock.shipment.out"
RETURN = "stock.shipment.out.return"

# Where a document type's stock comes from (quantity > 0) or goes to (quantity < 0).
SUPPLIER, CUSTOMER, TRANSIT, LOST_FOUND = "supplier", "customer", "transit", "lost_found"
COUNTERPARTS = {
    "inventory.receipt": SUPPLIER,  # TRANSIT when the receipt names an ASN
    "inventory.transfer_out": TRANSIT,
    "inventory.sale": CUSTOMER,
    "inventory.return": CUSTOMER,
    "inventory.count": LOST_FOUND,
    "inventory.adjustment": LOST_FOUND,  # or the other stock location of a move
}
NOTHING_TO_BOOK = frozenset({"inventory.transfer_shipped"})

# The button that takes a shipment on from each state, and the state it leads to; "assign"
# tries, then forces.
NEXT_STEP: dict[str, dict[str, tuple[str, str]]] = {
    INTERNAL: {
        "request": ("draft", "draft"),
        "draft": ("wait", "waiting"),
        "waiting": ("assign", "assigned"),
        "assigned": ("do", "done"),
        "packed": ("ship", "shipped"),
        "shipped": ("do", "done"),
    },
    IN: {"draft": ("receive", "received"), "received": ("do", "done")},
    RETURN: {"draft": ("receive", "received"), "received": ("do", "done")},
    OUT: {
        "draft": ("wait", "waiting"),
        "waiting": ("assign", "assigned"),
        "assigned": ("pick", "picked"),
        "picked": ("pack", "packed"),
        "packed": ("do", "done"),
        "shipped": ("do", "done"),
    },
}
PARTY_CODE = "NEWSTORE"


@dataclass(frozen=True)
class Move:
    product_id: str
    quantity: int
    source: str  # a NewStore stock location, or one of the counterparts
    target: str


@dataclass
class Booking:
    """One shipment to create (or find): its model, where from and where to, its moves."""

    model: str
    source: str
    target: str
    moves: list[Move] = field(default_factory=list)


def moves(document: dict[str, Any]) -> list[Move]:
    """The moves a document stands for, each with a positive quantity."""
    kind = document["type"]
    if kind in NOTHING_TO_BOOK:
        return []
    if kind not in COUNTERPARTS:
        raise TrytonRefused(f"no Tryton booking for documents of type {kind}")
    counterpart = COUNTERPARTS[kind]
    if kind == "inventory.receipt" and document.get("references", {}).get("asn_id"):
        counterpart = TRANSIT  # goods shipped from another store: its transit balance
    lines = [line for line in document["lines"] if line["quantity_delta"]]
    refs = document.get("references", {})
    paired = kind == "inventory.adjustment" and bool(
        refs.get("origin_stock_location_name") and refs.get("destination_stock_location_name")
    )
    result: list[Move] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        delta = int(line["quantity_delta"])
        after = lines[i + 1] if i + 1 < len(lines) else None
        if (
            paired
            and after is not None
            and delta < 0
            and after["product_id"] == line["product_id"]
            and int(after["quantity_delta"]) == -delta
        ):
            # One adjustment line: out of its origin, into its destination.
            source, target = line["stock_location"], after["stock_location"]
            if source != target:
                result.append(Move(line["product_id"], -delta, source, target))
            i += 2
            continue
        where = line["stock_location"]
        if delta > 0:
            result.append(Move(line["product_id"], delta, counterpart, where))
        else:
            result.append(Move(line["product_id"], -delta, where, counterpart))
        i += 1
    return result


def bookings(planned: Iterable[Move]) -> list[Booking]:
    """The shipments that book `planned`: one per model and pair of locations, in an order
    that brings goods into a stock location before moving them on."""
    grouped: dict[tuple[str, str, str], Booking] = {}

    def add(model: str, move: Move) -> None:
        key = (model, move.source, move.target)
        grouped.setdefault(key, Booking(model, move.source, move.target)).moves.append(move)

    for move in planned:
        if move.source in (SUPPLIER, CUSTOMER):
            model = IN if move.source == SUPPLIER else RETURN
            add(model, Move(move.product_id, move.quantity, move.source, MAIN))
            if move.target != MAIN:
                add(INTERNAL, Move(move.product_id, move.quantity, MAIN, move.target))
        elif move.target == CUSTOMER:
            if move.source != MAIN:
                add(INTERNAL, Move(move.product_id, move.quantity, move.source, MAIN))
            add(OUT, Move(move.product_id, move.quantity, MAIN, CUSTOMER))
        else:
            add(INTERNAL, move)
    order = {IN: 0, RETURN: 0, INTERNAL: 1, OUT: 2}
    return sorted(grouped.values(), key=lambda b: order[b.model])


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


class TrytonAdapter:
    """Books documents in one Tryton database; reads its stock back for reconciliation."""

    can_read_stock = True

    def __init__(
        self, rpc: TrytonRpc, mapping: erp_mapping.Mapping, *, timeout_seconds: float
    ) -> None:
        self.rpc = rpc
        self.mapping = mapping
        # Bounds a whole booking, as the json adapter's one request: the worker sizes its
        # claims' leases from it, so no other worker books the same document meanwhile.
        self.timeout_seconds = timeout_seconds
        # Tryton's ids for codes, kept while the worker runs; a code not found is looked up
        # again next time, so creating the record in Tryton is enough to unblock a message.
        self._warehouses: dict[str, Warehouse] = {}
        self._locations: dict[str, int] = {}
        self._products: dict[str, Product] = {}
        self._fixed: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, pool: int | None = None) -> TrytonAdapter:
        if settings.erp_url is None:
            raise ValueError("INVSYNC_ERP_URL is not set")
        if not settings.erp_user:
            raise ValueError("INVSYNC_ERP_USER: INVSYNC_ERP_ADAPTER=tryton needs a login")
        password = settings.erp_password.get_secret_value() if settings.erp_password else ""
        rpc = TrytonRpc(
            settings.erp_url,
            settings.erp_user,
            password,
            timeout_seconds=settings.erp_timeout_seconds,
            pool=pool or settings.erp_concurrency,
        )
        return cls(
            rpc,
            erp_mapping.load(settings.erp_mapping),
            timeout_seconds=settings.erp_timeout_seconds,
        )

    # -- delivery -----------------------------------------------------------------------------

    async def send(self, message_id: str, document: str) -> Result:
        started = time.perf_counter()

        def elapsed_ms() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.book(message_id, orjson.loads(document))
        except TimeoutError:
            # What was booked stays booked; the next attempt goes on from there.
            return Result(Outcome.RETRY, elapsed_ms(), error="timeout")
        except TrytonUnavailable as error:
            return Result(
                Outcome.RETRY, elapsed_ms(), error=str(error), retry_after=error.retry_after
            )
        except TrytonRefused as error:
            return Result(Outcome.DEAD, elapsed_ms(), error=str(error))
        return Result(Outcome.DELIVERED, elapsed_ms())

    async def book(self, message_id: str, document: dict[str, Any]) -> None:
        """Book `document` once, however often it is called; raises TrytonRefused or
        TrytonUnavailable."""
        planned = bookings(moves(document))
        if not planned:
            return
        location_id = document["location_id"]
        warehouse = await self.warehouse(location_id)
        products = await self.products({m.product_id for b in planned for m in b.moves})
        # Every record looked up before anything is booked: an unknown one refuses the whole
        # document, never leaves half of it booked.
        ends = [
            (
                await self._place(booking.source, location_id, warehouse),
                await self._place(booking.target, location_id, warehouse),
            )
            for booking in planned
        ]
        existing = await self._existing(message_id, {booking.model for booking in planned})
        for booking, (source, target) in zip(planned, ends, strict=True):
            shipment = existing.get(_key(booking.model, source, target, warehouse.id))
            state = None  # found: in whatever state an earlier delivery left it
            if shipment is None:
                shipment = await self._create(
                    message_id, booking, source, target, warehouse, products
                )
                state = "draft"
            await self._finish(booking.model, shipment, state)

    async def _existing(self, message_id: str, models: set[str]) -> dict[tuple[str, int, int], int]:
        """The shipments booked earlier for this message (see `_key`)."""
        found: dict[tuple[str, int, int], int] = {}
        for model in sorted(models):
            names = ["from_location", "to_location"] if model == INTERNAL else ["warehouse"]
            rows = await self.rpc.model(
                model,
                "search_read",
                [("reference", "=", message_id), ("state", "!=", "cancelled")],
                0,
                None,
                None,
                names,
            )
            for row in rows:
                if model == INTERNAL:
                    key = _key(model, row["from_location"], row["to_location"], 0)
                else:
                    key = _key(model, 0, 0, row["warehouse"])
                found[key] = row["id"]
        return found

    async def _create(
        self,
        message_id: str,
        booking: Booking,
        source: int,
        target: int,
        warehouse: Warehouse,
        products: dict[str, Product],
    ) -> int:
        """The shipment and its moves, in one call (one transaction in Tryton)."""
        party = await self._party()
        currency = await self._currency()

        def move(m: Move, from_location: int, to_location: int) -> dict[str, Any]:
            product = products[m.product_id]
            values: dict[str, Any] = {
                "product": product.id,
                "unit": product.unit,
                "quantity": float(m.quantity),
                "from_location": from_location,
                "to_location": to_location,
            }
            if booking.model != INTERNAL:  # goods from or to a party carry a price
                values["unit_price"] = product.cost_price or _decimal("0")
                values["currency"] = currency
            return values

        values: dict[str, Any] = {"reference": message_id}
        if booking.model == INTERNAL:
            values.update(from_location=source, to_location=target)
            values["moves"] = [["create", [move(m, source, target) for m in booking.moves]]]
        elif booking.model in (IN, RETURN):
            values.update(
                warehouse=warehouse.id,
                warehouse_input=warehouse.input,
                warehouse_storage=warehouse.storage,
            )
            values["supplier" if booking.model == IN else "customer"] = party["id"]
            values["incoming_moves"] = [
                ["create", [move(m, source, warehouse.input) for m in booking.moves]]
            ]
        else:
            if not party["addresses"]:
                raise TrytonRefused(f"the Tryton party coded {self._party_code!r} has no address")
            values.update(
                customer=party["id"],
                delivery_address=party["addresses"][0],
                warehouse=warehouse.id,
                warehouse_storage=warehouse.storage,
                warehouse_output=warehouse.output,
            )
            values["outgoing_moves"] = [
                ["create", [move(m, warehouse.output, target) for m in booking.moves]]
            ]
        (shipment,) = await self.rpc.model(booking.model, "create", [values])
        return int(shipment)

    async def _finish(self, model: str, shipment: int, state: str | None) -> None:
        """Press the shipment's buttons until it is done, from `state` (None: read it).

        A button answers nothing over RPC, and one pressed in a state it does not apply to
        changes nothing; so the state each button should lead to is assumed, and read only
        after an assignment (which may leave the shipment waiting) and to confirm `done`."""
        steps = NEXT_STEP[model]
        confirmed = False
        for _ in range(2 * len(steps) + 2):
            if state is None:
                (row,) = await self.rpc.model(model, "read", [shipment], ["state", "number"])
                state, confirmed = row["state"], True
                if state != "done" and state not in steps:
                    raise TrytonRefused(
                        f"{model} {row['number'] or shipment} is {state} in Tryton, not done"
                    )
            if state == "done":
                if confirmed:
                    return
                state = None
                continue
            button, state = steps[state]
            confirmed = False
            if button == "assign":
                await self.rpc.model(model, "assign_try", [shipment])
                (row,) = await self.rpc.model(model, "read", [shipment], ["state"])
                if row["state"] == "waiting":  # short of stock: NewStore's word counts
                    await self.rpc.model(model, "assign_force", [shipment])
                else:
                    state, confirmed = row["state"], True
            else:
                await self.rpc.model(model, button, [shipment])
        raise TrytonUnavailable(f"{model} {shipment} did not reach done")

    # -- Tryton's records for NewStore's ids ------------------------------------------------

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

    async def _place(self, place: str, location_id: str, warehouse: Warehouse) -> int:
        if place == LOST_FOUND:
            if warehouse.lost_found is not None:
                return warehouse.lost_found
            return await self._fixed_location(LOST_FOUND)
        if place in (SUPPLIER, CUSTOMER):
            party = await self._party()
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
    def _party_code(self) -> str:
        return self.mapping.party or PARTY_CODE

    async def _party(self) -> dict[str, Any]:
        if "party" not in self._fixed:
            rows = await self.rpc.model(
                "party.party",
                "search_read",
                [("code", "=", self._party_code)],
                0,
                1,
                None,
                ["supplier_location", "customer_location", "addresses"],
            )
            if not rows:
                raise TrytonRefused(f"no Tryton party coded {self._party_code!r}")
            self._fixed["party"] = rows[0]
            self._fixed[SUPPLIER] = rows[0]["supplier_location"]
            self._fixed[CUSTOMER] = rows[0]["customer_location"]
        party: dict[str, Any] = self._fixed["party"]
        return party

    async def _currency(self) -> int:
        if "currency" not in self._fixed:
            company = self.rpc.context.get("company")
            if not company:
                raise TrytonRefused("the Tryton user has no company in its preferences")
            (row,) = await self.rpc.model("company.company", "read", [company], ["currency"])
            self._fixed["currency"] = row["currency"]
        return int(self._fixed["currency"])

    # -- reading stock back -------------------------------------------------------------------

    async def quantities(
        self, location_id: str, stock_location: str, product_ids: Iterable[str]
    ) -> dict[str, int | None]:
        """Tryton's quantity of each product at one NewStore stock location (its child
        locations not counted); None for a product Tryton does not know. Raises TrytonRefused
        for a location it does not know."""
        place = await self.stock_location(location_id, stock_location)
        wanted = {p: self.mapping.product(p) for p in product_ids}
        context = {
            **self.rpc.context,
            "locations": [place],
            "with_childs": False,
            "stock_date_end": _date(dt.date.today()),
        }
        rows = await self.rpc.call(
            "model.product.product.search_read",
            [("code", "in", sorted(set(wanted.values())))],
            0,
            None,
            None,
            ["code", "quantity"],
            context,
        )
        by_code = {row["code"]: row["quantity"] for row in rows}
        return {
            p: None if by_code.get(code) is None else round(by_code[code])
            for p, code in wanted.items()
        }

    async def aclose(self) -> None:
        await self.rpc.aclose()

    async def __aenter__(self) -> TrytonAdapter:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def _key(model: str, source: int, target: int, warehouse: int) -> tuple[str, int, int]:
    """What tells a document's shipments apart: an internal one by its two locations; the
    others (one of each model at most per document) by their warehouse."""
    return (model, source, target) if model == INTERNAL else (model, warehouse, 0)


def _decimal(value: str) -> dict[str, str]:
    return {"__class__": "Decimal", "decimal": value}


def _date(value: dt.date) -> dict[str, Any]:
    return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
