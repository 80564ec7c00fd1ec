"""ERP-side reconciliation: the ERP's stock read back and compared with our stock positions.

For adapters that can read stock (`tryton`). Each of our positions is compared with the ERP's
quantity of that product at that location and stock location (its child locations not
counted); the answer lists where they differ, and where the ERP cannot say (an id it does not
know). Positions of several tenants at one location are compared as their sum, since the ERP
has no tenants. Products the ERP holds that NewStore never moved are not listed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from inventory_sync.erp_sync.tryton import TrytonAdapter
from inventory_sync.erp_sync.tryton_rpc import TrytonRefused, TrytonUnavailable
from inventory_sync.errors import ServiceError
from inventory_sync.settings import Settings

Position = tuple[str, str, str]  # (location_id, stock_location, product_id)


class StockUnreadable(ServiceError):
    """The configured adapter cannot read the ERP's stock."""

    status_code = 409
    code = "erp_stock_unreadable"


class ErpUnavailable(ServiceError):
    """The ERP did not answer; try again later."""

    status_code = 503
    code = "erp_unavailable"


def reader(settings: Settings) -> TrytonAdapter:
    """An adapter that reads the ERP's stock, or StockUnreadable saying why there is none."""
    if settings.erp_adapter != "tryton":
        raise StockUnreadable(
            f"the {settings.erp_adapter} adapter cannot read the ERP's stock; "
            "INVSYNC_ERP_ADAPTER=tryton can"
        )
    if settings.erp_url is None:
        raise StockUnreadable("INVSYNC_ERP_URL is not set")
    try:
        return TrytonAdapter.from_settings(settings, pool=2)
    except ValueError as error:
        raise StockUnreadable(str(error)) from None


async def compare(settings: Settings, positions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """`{"adapter", "compared", "items"}`: every position whose ERP quantity differs from our
    `on_hand` or is unknown, with `erp_quantity`, `difference` (ERP minus ours) and `reason`."""
    ours: dict[Position, int] = defaultdict(int)
    for row in positions:
        ours[(row["location_id"], row["stock_location"], row["product_id"])] += row["on_hand"]
    by_place: dict[tuple[str, str], list[str]] = defaultdict(list)
    for location_id, stock_location, product_id in ours:
        by_place[(location_id, stock_location)].append(product_id)
    items: list[dict[str, Any]] = []
    async with reader(settings) as adapter:
        for (location_id, stock_location), products in sorted(by_place.items()):
            try:
                theirs = await adapter.quantities(location_id, stock_location, products)
                reasons = {
                    p: None if q is not None else adapter.records.unknown_products([p])
                    for p, q in theirs.items()
                }
            except TrytonRefused as error:
                theirs = dict.fromkeys(products)
                reasons = dict.fromkeys(products, str(error))
            except TrytonUnavailable as error:
                raise ErpUnavailable(
                    f"the ERP did not answer: {error}", headers={"Retry-After": "30"}
                ) from None
            for product_id in sorted(products):
                on_hand = ours[(location_id, stock_location, product_id)]
                quantity = theirs[product_id]
                if quantity == on_hand:
                    continue
                items.append(
                    {
                        "location_id": location_id,
                        "stock_location": stock_location,
                        "product_id": product_id,
                        "on_hand": on_hand,
                        "erp_quantity": quantity,
                        "difference": None if quantity is None else quantity - on_hand,
                        "reason": reasons[product_id],
                    }
                )
    return {"adapter": settings.erp_adapter, "compared": len(ours), "items": items}
