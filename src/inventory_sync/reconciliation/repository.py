"""The reconciliation summary of PRODUCT.md section 6, from the same queries as its details."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.engine import Connection

from inventory_sync.erp_sync import repository as erp_repository
from inventory_sync.ledger import repository as ledger_repository
from inventory_sync.ledger.domain import Kind
from inventory_sync.ledger.models import count_observation, ledger_movement
from inventory_sync.reconciliation import chunks, counts, transfers
from inventory_sync.webhooks.models import inbound_event


def summary(conn: Connection, tenant: str | None = None) -> dict[str, Any]:
    """Transfers by status, unmatched receipts, drifted count lines, incomplete chunk sets and
    the ERP sync backlog. `tenant` narrows everything but the ERP backlog, which is global."""
    by_status = transfers.count_by_status(conn, tenant)
    return {
        "transfers": {**by_status, "total": sum(by_status.values())},
        "unmatched_receipts": transfers.count_unmatched(conn, tenant),
        "counts": {"drifted_lines": counts.count_drifted(conn, tenant)},
        "chunks": {"incomplete_sets": chunks.count_incomplete(conn, tenant)},
        "sync": erp_repository.backlog(conn),
    }


def overview(conn: Connection) -> dict[str, Any]:
    """Everything `inventory-sync status` shows: stored events by status, ledger movements by
    kind, the number of stock positions, and the reconciliation summary."""
    e, m, c = inbound_event, ledger_movement, count_observation
    events = {
        status: int(number)
        for status, number in conn.execute(
            select(e.c.status, func.count()).group_by(e.c.status).order_by(e.c.status)
        )
    }
    movements = {
        kind: int(number)
        for kind, number in conn.execute(
            select(m.c.kind, func.count()).group_by(m.c.kind).order_by(m.c.kind)
        )
    }
    # The same keys `ledger.repository.stock_positions` reports a position for.
    key = ledger_repository.KEY
    keys = union(
        select(*(m.c[name] for name in key)).where(m.c.kind != Kind.COUNT_VARIANCE.value),
        select(*(c.c[name] for name in key)),
    ).subquery("position_key")
    positions = int(conn.execute(select(func.count()).select_from(keys)).scalar_one())
    return {
        "events": events,
        "movements": movements,
        "stock_positions": positions,
        **summary(conn),
    }
