"""How a document reaches the ERP: the adapter `INVSYNC_ERP_ADAPTER` names (PRODUCT.md 7.1).

An adapter turns one stored document into the ERP's own calls and their answer into a
`Result`: delivered, retry (after), or dead with a reason. Everything around it (claims,
retries, the breaker, dead letters, attempts, metrics, the ops API) is the worker's and the
same for every adapter.

- `json`: the signed JSON POST of section 7 (`client.ErpClient`).
- `tryton`: Tryton shipments over JSON-RPC (`tryton.TrytonAdapter`); it can also read the
  ERP's stock back, for reconciliation.
- `netsuite`: inventory adjustments upserted through NetSuite's REST record service
  (`netsuite.NetSuiteAdapter`), within permits the store keeps for all workers together.
"""

from __future__ import annotations

from typing import Protocol, Self

from inventory_sync.erp_sync.client import ErpClient, Result
from inventory_sync.erp_sync.netsuite import NetSuiteAdapter, Permits
from inventory_sync.erp_sync.tryton import TrytonAdapter
from inventory_sync.settings import Settings


class Adapter(Protocol):
    async def send(self, message_id: str, document: str) -> Result:
        """Deliver one document; never raises for anything the network or the ERP does."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *_exc: object) -> None: ...


def from_settings(settings: Settings, permits: Permits, *, pool: int | None = None) -> Adapter:
    """The configured adapter, or ValueError naming the variable that is wrong. `permits`
    (the store) bounds the requests in flight of an ERP that limits them account-wide."""
    if settings.erp_adapter == "tryton":
        return TrytonAdapter.from_settings(settings, pool=pool)
    if settings.erp_adapter == "netsuite":
        return NetSuiteAdapter.from_settings(settings, permits, pool=pool)
    return ErpClient.from_settings(settings, pool=pool)
