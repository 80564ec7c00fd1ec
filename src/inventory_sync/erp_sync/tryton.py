"""The `tryton` adapter: each ERP document booked as Tryton shipments (PRODUCT.md section 7.1).

`tryton_plan` says which shipments a document needs; this module finds Tryton's records for
NewStore's ids, creates the shipments with their moves and presses their buttons until they are
done, over JSON-RPC (`tryton_rpc`):

| shipment | steps |
|---|---|
| `stock.shipment.in`, `stock.shipment.out.return` | receive, do |
| `stock.shipment.out` | wait, assign, pick, pack, do |
| `stock.shipment.internal` | wait, assign, do |

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
from typing import Any

import orjson

from inventory_sync.erp_sync import mapping as erp_mapping
from inventory_sync.erp_sync.client import Outcome, Result
from inventory_sync.erp_sync.tryton_plan import (
    IN,
    INTERNAL,
    OUT,
    RETURN,
    Booking,
    Move,
    bookings,
    moves,
)
from inventory_sync.erp_sync.tryton_records import Product, TrytonRecords, Warehouse
from inventory_sync.erp_sync.tryton_rpc import TrytonRefused, TrytonRpc, TrytonUnavailable
from inventory_sync.settings import Settings

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


class TrytonAdapter:
    """Books documents in one Tryton database; reads its stock back for reconciliation."""

    def __init__(
        self, rpc: TrytonRpc, mapping: erp_mapping.Mapping, *, timeout_seconds: float
    ) -> None:
        self.rpc = rpc
        self.mapping = mapping
        # Bounds a whole booking, as the json adapter's one request: the worker sizes its
        # claims' leases from it, so no other worker books the same document meanwhile.
        self.timeout_seconds = timeout_seconds
        self.records = TrytonRecords(rpc, mapping)

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
        warehouse = await self.records.warehouse(location_id)
        products = await self.records.products({m.product_id for b in planned for m in b.moves})
        # Every record looked up before anything is booked: an unknown one refuses the whole
        # document, never leaves half of it booked.
        ends = [
            (
                await self.records.place(booking.source, location_id, warehouse),
                await self.records.place(booking.target, location_id, warehouse),
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
        party = await self.records.party()
        currency = await self.records.currency()

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
                raise TrytonRefused(
                    f"the Tryton party coded {self.records.party_code!r} has no address"
                )
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

    # -- reading stock back -------------------------------------------------------------------

    async def quantities(
        self, location_id: str, stock_location: str, product_ids: Iterable[str]
    ) -> dict[str, int | None]:
        """Tryton's quantity of each product at one NewStore stock location (its child
        locations not counted); None for a product Tryton does not know. Raises TrytonRefused
        for a location it does not know."""
        place = await self.records.stock_location(location_id, stock_location)
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
