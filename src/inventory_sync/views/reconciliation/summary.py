"""The reconciliation summary of PRODUCT.md section 6, from the same queries as its details."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from inventory_sync.clock import utcnow
from inventory_sync.views import events as events_view
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views import outbox as outbox_view
from inventory_sync.views import workers as workers_view
from inventory_sync.views.reconciliation import chunks, completeness, counts, transfers


def summary(conn: Connection, tenant: str | None = None) -> dict[str, Any]:
    """Quarantined and dismissed events, transfers by status, unmatched receipts, drifted count
    lines, incomplete chunk sets and the ERP sync backlog. `tenant` narrows everything but the
    ERP backlog, which is global."""
    by_status = transfers.count_by_status(conn, tenant)
    events = events_view.count_by_status(conn, tenant)
    return {
        "events": {status: events.get(status, 0) for status in ("quarantined", "dismissed")},
        "transfers": {**by_status, "total": sum(by_status.values())},
        "unmatched_receipts": transfers.count_unmatched(conn, tenant),
        "unmatched_receipt_asn_ids": transfers.first_unmatched_asn_ids(conn, tenant),
        "counts": {"drifted_lines": counts.count_drifted(conn, tenant)},
        "chunks": {"incomplete_sets": chunks.count_incomplete(conn, tenant)},
        "sync": outbox_view.backlog(conn),
    }


def overview(conn: Connection) -> dict[str, Any]:
    """Everything `inventory-sync status` shows: stored events by status, ledger movements by
    kind, the number of stock positions, the reconciliation summary, the ERP sync workers by
    state and completeness per store over the last 30 days."""
    now = utcnow()
    window = completeness.CompletenessFilter(since=now - completeness.WINDOW)
    return {
        **summary(conn),
        "events": events_view.count_by_status(conn),
        "movements": ledger_view.count_by_kind(conn),
        "stock_positions": ledger_view.count_positions(conn),
        "workers": dict(workers_view.count_by_state(workers_view.workers(conn))),
        "completeness": completeness.by_location(conn, window, now),
    }
