"""Ledger queries: movements with filters and keyset pagination, and stock positions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.engine import Connection

from inventory_sync.clock import iso
from inventory_sync.ledger.effects import SPAN, Kind
from inventory_sync.storage.filters import narrow
from inventory_sync.storage.tables import (
    POSITION_INDEX_KEY,
    count_observation,
    inbound_event,
    ledger_movement,
)

m = ledger_movement


@dataclass(frozen=True)
class MovementFilter:
    tenant: str | None = None
    location_id: str | None = None
    product_id: str | None = None
    stock_location: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_id: int | None = None


def of_event(event_id: ColumnElement[int] | int) -> ColumnElement[bool]:
    """The movements of the event(s) `event_id`: the range of the primary key that holds them
    (`ledger.effects.movement_id`), which the index serves; the ledger has no index on
    `event_id` itself."""
    first = event_id * SPAN
    # The last id, not the one after it: that would pass 64 bits for the largest event id.
    return and_(m.c.id >= first, m.c.id <= first + (SPAN - 1), m.c.event_id == event_id)


def movements_query(where: MovementFilter, after_id: int | None = None) -> Select[Any]:
    # An outer join: a movement is listed even if its event could not be found.
    query = narrow(
        select(m, inbound_event.c.name.label("event_name"))
        .select_from(m.outerjoin(inbound_event, inbound_event.c.id == m.c.event_id))
        .order_by(m.c.id),
        [
            (m.c.tenant, where.tenant),
            (m.c.location_id, where.location_id),
            (m.c.product_id, where.product_id),
            (m.c.stock_location, where.stock_location),
            (m.c.kind, where.kind),
        ],
        period=m.c.occurred_at,
        since=where.since,
        until=where.until,
    )
    if where.event_id is not None:
        query = query.where(of_event(where.event_id))
    if after_id is not None:
        query = query.where(m.c.id > after_id)
    return query


def movement_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "location_id": row.location_id,
        "stock_location": row.stock_location,
        "product_id": row.product_id,
        "quantity": row.quantity,
        "kind": row.kind,
        "occurred_at": iso(row.occurred_at),
        "recorded_at": iso(row.recorded_at),
        "event_id": row.event_id,
        "event_name": row.event_name,
        "line_number": row.line_number,
        "references": row.references,
    }


def list_movements(
    conn: Connection, where: MovementFilter, limit: int, after_id: int | None
) -> list[dict[str, Any]]:
    rows = conn.execute(movements_query(where, after_id).limit(limit))
    return [movement_json(row) for row in rows]


def count_of_event(conn: Connection, event_id: int) -> int:
    return int(
        conn.execute(select(func.count()).select_from(m).where(of_event(event_id))).scalar_one()
    )


@dataclass(frozen=True)
class StockFilter:
    tenant: str | None = None
    location_id: str | None = None
    product_id: str | None = None
    stock_location: str | None = None


KEY = ("tenant", "location_id", "stock_location", "product_id")


def moved_since(
    key: Sequence[ColumnElement[Any]],
    after: ColumnElement[Any],
    upto: ColumnElement[Any] | None = None,
) -> ScalarSelect[Any]:
    """Sum of the non-count movements of one position that `stock_positions` adds to its anchor.

    `key` gives the position's (tenant, location_id, stock_location, product_id) columns of an
    enclosing query. Movements count when `occurred_at` is strictly after `after` (every
    movement when `after` is NULL, i.e. not anchored) and, if `upto` is given, not after it.
    """
    conditions = [
        *(m.c[name] == column for name, column in zip(KEY, key, strict=True)),
        m.c.kind != Kind.COUNT_VARIANCE.value,
        or_(after.is_(None), m.c.occurred_at > after),
    ]
    if upto is not None:
        conditions.append(m.c.occurred_at <= upto)
    return select(func.coalesce(func.sum(m.c.quantity), 0)).where(*conditions).scalar_subquery()


def stock_positions(
    conn: Connection, where: StockFilter, limit: int, after: list[str] | None
) -> list[dict[str, Any]]:
    """Positions by (tenant, location, stock location, product), PRODUCT.md section 5.

    The latest count by `counted_at` anchors a position: on hand = its count plus every
    non-count movement that occurred strictly after it. Ties between counts are broken by count
    id, chunk and line, never by arrival, so the answer does not depend on delivery order.
    """
    c = count_observation

    def filtered(query: Select[Any], table: Any) -> Select[Any]:
        for name in KEY:
            value = getattr(where, name)
            if value is not None:
                query = query.where(table.c[name] == value)
        return query

    ranked = filtered(
        select(
            *(c.c[name] for name in KEY),
            c.c.counted,
            c.c.stock_on_hand,
            c.c.counted_at,
            func.row_number()
            .over(
                # In the position index's column order, so the sort can follow the index.
                partition_by=[c.c[name] for name in POSITION_INDEX_KEY],
                order_by=[
                    c.c.counted_at.desc(),
                    c.c.count_id.desc(),
                    c.c.chunk_number.desc(),
                    c.c.line_number.desc(),
                ],
            )
            .label("rank"),
        ),
        c,
    ).subquery("ranked")
    anchors = select(ranked).where(ranked.c.rank == 1).subquery("anchor")

    keys = union(
        filtered(
            select(*(m.c[name] for name in KEY)).where(m.c.kind != Kind.COUNT_VARIANCE.value), m
        ),
        select(*(anchors.c[name] for name in KEY)),
    ).subquery("position_key")
    key_columns = [keys.c[name] for name in KEY]

    moved = moved_since([keys.c[name] for name in KEY], anchors.c.counted_at)
    query = (
        select(
            *key_columns,
            anchors.c.counted,
            anchors.c.stock_on_hand,
            anchors.c.counted_at,
            (func.coalesce(anchors.c.counted, literal(0)) + moved).label("on_hand"),
        )
        .select_from(
            keys.outerjoin(anchors, and_(*(anchors.c[name] == keys.c[name] for name in KEY)))
        )
        .order_by(*key_columns)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(*key_columns) > tuple_(*after))
    return [
        {
            "tenant": row.tenant,
            "location_id": row.location_id,
            "stock_location": row.stock_location,
            "product_id": row.product_id,
            "on_hand": int(row.on_hand),
            "anchored": row.counted_at is not None,
            "last_count": None
            if row.counted_at is None
            else {
                "counted": row.counted,
                "stock_on_hand": row.stock_on_hand,
                "counted_at": iso(row.counted_at),
            },
        }
        for row in conn.execute(query)
    ]


def all_stock_positions(conn: Connection, where: StockFilter) -> list[dict[str, Any]]:
    """Every position `stock_positions` finds, read a thousand at a time."""
    rows: list[dict[str, Any]] = []
    after: list[str] | None = None
    while True:
        page = stock_positions(conn, where, 1000, after)
        rows += page
        if len(page) < 1000:
            return rows
        after = [page[-1][name] for name in KEY]


def count_by_kind(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(m.c.kind, func.count()).group_by(m.c.kind).order_by(m.c.kind))
    return {kind: int(number) for kind, number in rows}


def count_positions(conn: Connection) -> int:
    """How many stock positions `stock_positions` reports."""
    c = count_observation
    keys = union(
        select(*(m.c[name] for name in KEY)).where(m.c.kind != Kind.COUNT_VARIANCE.value),
        select(*(c.c[name] for name in KEY)),
    ).subquery("position_key")
    return int(conn.execute(select(func.count()).select_from(keys)).scalar_one())
