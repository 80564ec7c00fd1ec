"""Count lines: NewStore's figures against our ledger just before each count (section 6).

For each counted line: `variance` = counted - stock_on_hand (NewStore's own view). When an
earlier count of the same (tenant, location, stock location, product) anchors our ledger,
`expected` is our position at the moment of this count by the stock rule of section 5: that
earlier count's figure plus every non-count movement after it and up to this count's
`counted_at` (inclusive, because the stock rule treats a movement at the instant of a count as
already in the count). `drift` = stock_on_hand - expected: what NewStore booked between the two
counts that our ledger has not. Every unit NewStore counts in or out (receipts, sales, transfers
out, adjustments, returns) is an event, so with every event delivered the drift is 0, and with
events missing it is exactly their units at that position: +5 for a lost receipt of 5, -1 for
a lost sale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, null, select
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import count_observation
from inventory_sync.views import ledger as ledger_view

c = count_observation
KEY = ledger_view.KEY


@dataclass(frozen=True)
class CountFilter:
    tenant: str | None = None
    location_id: str | None = None
    stock_location: str | None = None
    product_id: str | None = None
    count_id: str | None = None
    drifted: bool | None = None
    """True: only lines whose drift is known and non-zero; False: only the others."""
    since: datetime | None = None
    """On `counted_at` (inclusive)."""
    until: datetime | None = None
    """On `counted_at` (exclusive)."""


def _lines(where: CountFilter, after_id: int | None, limit: int | None) -> Select[Any]:
    earlier = c.alias("earlier")
    anchor_at = (
        select(func.max(earlier.c.counted_at))
        .where(
            *(earlier.c[name] == c.c[name] for name in KEY),
            earlier.c.counted_at < c.c.counted_at,
        )
        .scalar_subquery()
    )
    query = select(c, anchor_at.label("anchor_at")).order_by(c.c.id)
    query = narrow(
        query,
        [
            (c.c.tenant, where.tenant),
            (c.c.location_id, where.location_id),
            (c.c.stock_location, where.stock_location),
            (c.c.product_id, where.product_id),
            (c.c.count_id, where.count_id),
        ],
        period=c.c.counted_at,
        since=where.since,
        until=where.until,
    )
    if after_id is not None:
        query = query.where(c.c.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    observed = query.subquery("observed")

    anchor = c.alias("anchor")
    # Same tie-break as `ledger.repository.stock_positions`: never arrival order.
    anchor_counted = (
        select(anchor.c.counted)
        .where(
            *(anchor.c[name] == observed.c[name] for name in KEY),
            anchor.c.counted_at == observed.c.anchor_at,
        )
        .order_by(
            anchor.c.count_id.desc(), anchor.c.chunk_number.desc(), anchor.c.line_number.desc()
        )
        .limit(1)
        .scalar_subquery()
    )
    moved = ledger_view.moved_since(
        [observed.c[name] for name in KEY], observed.c.anchor_at, observed.c.counted_at
    )
    expected = case((observed.c.anchor_at.is_(None), null()), else_=anchor_counted + moved)
    return select(observed, expected.label("expected"))


def list_counts(
    conn: Connection, where: CountFilter, limit: int, after_id: int | None
) -> list[dict[str, Any]]:
    """Up to `limit` count lines with id above `after_id`, in arrival order."""
    if where.drifted is None:
        query = _lines(where, after_id, limit).order_by("id")
    else:
        lines = _lines(where, after_id, None).subquery("count_line")
        drift = lines.c.stock_on_hand - lines.c.expected
        condition = (
            (lines.c.expected.is_not(None)) & (drift != 0)
            if where.drifted
            else (lines.c.expected.is_(None)) | (drift == 0)
        )
        query = select(lines).where(condition).order_by(lines.c.id).limit(limit)
    return [_json(row) for row in conn.execute(query)]


def count_drifted(conn: Connection, tenant: str | None) -> int:
    """Count lines whose drift is known and non-zero."""
    lines = _lines(CountFilter(tenant=tenant), None, None).subquery("count_line")
    query = select(func.count()).where(
        lines.c.expected.is_not(None), lines.c.expected != lines.c.stock_on_hand
    )
    return int(conn.execute(query).scalar_one())


def _json(row: Any) -> dict[str, Any]:
    expected = None if row.expected is None else int(row.expected)
    return {
        "id": row.id,
        "tenant": row.tenant,
        "count_id": row.count_id,
        "event_id": row.event_id,
        "location_id": row.location_id,
        "stock_location": row.stock_location,
        "product_id": row.product_id,
        "counted": row.counted,
        "stock_on_hand": row.stock_on_hand,
        "variance": row.counted - row.stock_on_hand,
        "expected": expected,
        "drift": None if expected is None else row.stock_on_hand - expected,
        "anchored": expected is not None,
        "anchor_counted_at": iso(row.anchor_at),
        "counted_at": iso(row.counted_at),
    }


def drift_by_location(conn: Connection, where: CountFilter) -> list[Any]:
    """Per (tenant, location_id) with count lines matching `where`: `counted_lines` (anchored
    lines: those with a drift), `lines_with_drift` (non-zero) and `drift_units` (the sum of
    their absolute drifts)."""
    lines = _lines(where, None, None).subquery("count_line")
    drift = lines.c.stock_on_hand - lines.c.expected
    anchored = lines.c.expected.is_not(None)
    query = select(
        lines.c.tenant,
        lines.c.location_id,
        func.count(lines.c.expected).label("counted_lines"),
        func.coalesce(func.sum(case((anchored & (drift != 0), 1), else_=0)), 0).label(
            "lines_with_drift"
        ),
        func.coalesce(func.sum(func.abs(drift)), 0).label("drift_units"),
    ).group_by(lines.c.tenant, lines.c.location_id)
    return list(conn.execute(query))


def last_counted(conn: Connection, tenant: str | None, location_id: str | None) -> list[Any]:
    """(tenant, location_id, last_counted_at) of every store ever counted."""
    query = select(c.c.tenant, c.c.location_id, func.max(c.c.counted_at).label("last_counted_at"))
    query = narrow(query, [(c.c.tenant, tenant), (c.c.location_id, location_id)])
    return list(conn.execute(query.group_by(c.c.tenant, c.c.location_id)))
