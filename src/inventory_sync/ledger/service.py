"""Writing an event's effect: the only code that adds ledger rows.

`record()` never commits; the caller's transaction holds the inbox row, the ledger rows and the
outbox message together, so a stock change without its ERP document cannot exist.
`record_with_event()` writes all of them in a single statement, which is atomic by itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import insert
from sqlalchemy.engine import Connection, Dialect

from inventory_sync.db import UTCDateTime, first_row
from inventory_sync.erp_sync import document as erp_document
from inventory_sync.erp_sync import outbox
from inventory_sync.ledger.domain import Effect
from inventory_sync.ledger.models import count_observation, ledger_movement, shipment_line


@dataclass(frozen=True)
class Source:
    """The stored event an effect comes from."""

    event_id: int
    tenant: str
    name: str
    payload_id: str
    chunk_number: int
    total_chunks: int | None
    published_at: datetime | None


# One statement for all of an event's movements: PostgreSQL expands one JSON array into rows, in
# order (ids follow the lines, as with one insert per row). As an executemany, each row cost a
# separate execution plus per-row parameter processing in Python, which made this insert the
# largest share of intake CPU time (see docs/performance.md).
_MOVEMENTS_FROM_JSON = """
INSERT INTO ledger_movement (event_id, tenant, location_id, stock_location, product_id, quantity,
    kind, occurred_at, recorded_at, line_number, leg, "references")
SELECT %(event_id)s, %(tenant)s, %(location_id)s, t.s, t.p, t.q, COALESCE(t.k, %(kind)s),
    %(occurred_at)s, %(recorded_at)s, t.n, COALESCE(t.g, 0),
    COALESCE(t.r, %(references)s::json)
FROM ROWS FROM (json_to_recordset(%(rows)s::json)
    AS (s text, p text, q bigint, k text, n integer, g smallint, r json))
    WITH ORDINALITY AS t (s, p, q, k, n, g, r, i)
ORDER BY t.i
"""
_UTC = UTCDateTime()


def _movement_rows(
    dialect: Dialect, source: Source, effect: Effect, recorded_at: datetime
) -> dict[str, Any]:
    # A row carries its kind, leg and references only where they differ from the event's: most
    # lines share them, and this JSON is built and parsed once per line of every event.
    kind = effect.movements[0].kind if effect.movements else None
    references = effect.references
    rows = []
    for m in effect.movements:
        row = {"s": m.stock_location, "p": m.product_id, "q": m.quantity, "n": m.line_number}
        if m.kind is not kind:
            row["k"] = m.kind.value
        if m.leg:
            row["g"] = m.leg
        if m.references is not references:
            row["r"] = m.references
        rows.append(row)
    return {
        "kind": kind.value if kind is not None else None,
        "references": pydantic_core.to_json(references).decode(),
        "event_id": source.event_id,
        "tenant": source.tenant,
        "location_id": effect.location_id,
        "occurred_at": _UTC.process_bind_param(effect.occurred_at, dialect),
        "recorded_at": _UTC.process_bind_param(recorded_at, dialect),
        "rows": _json_rows(rows),
    }


def record(conn: Connection, source: Source, effect: Effect, recorded_at: datetime) -> str:
    """Append the effect's rows and queue its ERP document; returns the message id."""
    if effect.movements and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            _MOVEMENTS_FROM_JSON, _movement_rows(conn.dialect, source, effect, recorded_at)
        )
    elif effect.movements:
        conn.execute(
            insert(ledger_movement),
            [
                {
                    "event_id": source.event_id,
                    "tenant": source.tenant,
                    "location_id": effect.location_id,
                    "stock_location": m.stock_location,
                    "product_id": m.product_id,
                    "quantity": m.quantity,
                    "kind": m.kind.value,
                    "occurred_at": effect.occurred_at,
                    "recorded_at": recorded_at,
                    "line_number": m.line_number,
                    "leg": m.leg,
                    "references": m.references,
                }
                for m in effect.movements
            ],
        )
    _record_observations(conn, source, effect)
    message_id, body = _document(source, effect)
    outbox.enqueue(
        conn,
        message_id=message_id,
        event_id=source.event_id,
        tenant=source.tenant,
        type_=effect.document_type.value,
        location_id=effect.location_id,
        document=body,
        now=recorded_at,
    )
    return message_id


def _document(source: Source, effect: Effect) -> tuple[str, str]:
    message_id = erp_document.message_id(
        source.tenant, source.name, source.payload_id, source.chunk_number
    )
    return message_id, erp_document.build(message_id, source, effect)


def _record_observations(conn: Connection, source: Source, effect: Effect) -> None:
    """Count observations and ASN shipment lines, which reconciliation reads."""
    if effect.counts:
        conn.execute(
            insert(count_observation),
            [
                {
                    "event_id": source.event_id,
                    "tenant": source.tenant,
                    "count_id": source.payload_id,
                    "chunk_number": source.chunk_number,
                    "line_number": c.line_number,
                    "location_id": effect.location_id,
                    "stock_location": c.stock_location,
                    "product_id": c.product_id,
                    "counted": c.counted,
                    "stock_on_hand": c.stock_on_hand,
                    "counted_at": effect.occurred_at,
                }
                for c in effect.counts
            ],
        )
    if effect.shipment is not None and effect.shipment.lines:
        shipment = effect.shipment
        conn.execute(
            insert(shipment_line),
            [
                {
                    "event_id": source.event_id,
                    "tenant": source.tenant,
                    "asn_id": source.payload_id,
                    "chunk_number": source.chunk_number,
                    "line_number": line.line_number,
                    "origin_location_id": effect.location_id,
                    "destination_location_id": shipment.destination_location_id,
                    "transfer_order_ref": shipment.transfer_order_ref,
                    "shipment_ref": shipment.shipment_ref,
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "shipped_at": effect.occurred_at,
                }
                for line in shipment.lines
            ],
        )


# PostgreSQL, new accepted event: the inbox row, its movements, count observations, shipment
# lines and outbox message in ONE statement (data-modifying CTEs). A single statement is atomic on
# its own, so intake runs it without BEGIN/COMMIT: one round trip per accepted event. Nothing but
# the inbox insert runs when its slot is taken: the other inserts select from its (then empty)
# RETURNING, and a JSON array of no rows inserts nothing.
_EVENT_WITH_EFFECT = """
WITH ev AS (
    INSERT INTO inbound_event ({columns}) VALUES ({values})
    ON CONFLICT (slot) DO NOTHING RETURNING id
), mv AS (
    INSERT INTO ledger_movement (event_id, tenant, location_id, stock_location, product_id,
        quantity, kind, occurred_at, recorded_at, line_number, leg, "references")
    SELECT ev.id, %(tenant)s, %(location_id)s, t.s, t.p, t.q, COALESCE(t.k, %(kind)s),
        %(occurred_at)s, %(recorded_at)s, t.n, COALESCE(t.g, 0),
        COALESCE(t.r, %(references)s::json)
    FROM ev CROSS JOIN ROWS FROM (json_to_recordset(%(rows)s::json)
        AS (s text, p text, q bigint, k text, n integer, g smallint, r json))
        WITH ORDINALITY AS t (s, p, q, k, n, g, r, i)
    ORDER BY t.i
), co AS (
    INSERT INTO count_observation (event_id, tenant, count_id, chunk_number, line_number,
        location_id, stock_location, product_id, counted, stock_on_hand, counted_at)
    SELECT ev.id, %(tenant)s, %(payload_id)s, %(chunk_number)s, t.n, %(location_id)s, t.s, t.p,
        t.c, t.h, %(occurred_at)s
    FROM ev CROSS JOIN ROWS FROM (json_to_recordset(%(counts)s::json)
        AS (s text, p text, c bigint, h bigint, n integer))
        WITH ORDINALITY AS t (s, p, c, h, n, i)
    ORDER BY t.i
), sl AS (
    INSERT INTO shipment_line (event_id, tenant, asn_id, chunk_number, line_number,
        origin_location_id, destination_location_id, transfer_order_ref, shipment_ref,
        product_id, quantity, shipped_at)
    SELECT ev.id, %(tenant)s, %(payload_id)s, %(chunk_number)s, t.n, %(location_id)s,
        %(destination_location_id)s, %(transfer_order_ref)s, %(shipment_ref)s, t.p, t.q,
        %(occurred_at)s
    FROM ev CROSS JOIN ROWS FROM (json_to_recordset(%(shipment_lines)s::json)
        AS (p text, q bigint, n integer))
        WITH ORDINALITY AS t (p, q, n, i)
    ORDER BY t.i
), ob AS (
    INSERT INTO outbox_message (id, event_id, tenant, type, location_id, document, status,
        attempts, next_attempt_at, created_at, updated_at)
    SELECT %(message_id)s, ev.id, %(tenant)s, %(document_type)s, %(location_id)s, %(document)s,
        'pending', 0, %(recorded_at)s, %(recorded_at)s, %(recorded_at)s
    FROM ev
)
SELECT id, true AS inserted, NULL AS content_hash FROM ev
UNION ALL
SELECT id, false, content_hash FROM inbound_event
WHERE slot = %(e_slot)s AND NOT EXISTS (SELECT FROM ev)
"""


@functools.cache
def _event_with_effect_sql(columns: tuple[str, ...]) -> str:
    return _EVENT_WITH_EFFECT.format(
        columns=", ".join(columns), values=", ".join(f"%(e_{c})s" for c in columns)
    )


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return pydantic_core.to_json(rows).decode()


def event_with_effect(
    dialect: Dialect,
    event_row: dict[str, Any],
    source: Source,
    effect: Effect,
    recorded_at: datetime,
) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of `record_with_event()`."""
    message_id, body = _document(source, effect)
    params = _movement_rows(dialect, source, effect, recorded_at)
    params.pop("event_id")
    params.update({f"e_{c}": v for c, v in event_row.items()})
    shipment = effect.shipment
    params.update(
        message_id=message_id,
        document=body,
        document_type=effect.document_type.value,
        payload_id=source.payload_id,
        chunk_number=source.chunk_number,
        counts=_json_rows(
            [
                {
                    "s": c.stock_location,
                    "p": c.product_id,
                    "c": c.counted,
                    "h": c.stock_on_hand,
                    "n": c.line_number,
                }
                for c in effect.counts
            ]
        ),
        shipment_lines=_json_rows(
            [
                {"p": line.product_id, "q": line.quantity, "n": line.line_number}
                for line in (shipment.lines if shipment else ())
            ]
        ),
        destination_location_id=shipment.destination_location_id if shipment else None,
        transfer_order_ref=shipment.transfer_order_ref if shipment else None,
        shipment_ref=shipment.shipment_ref if shipment else None,
    )
    return _event_with_effect_sql(tuple(event_row)), params


def record_with_event(
    conn: Connection,
    event_row: dict[str, Any],
    source: Source,
    effect: Effect,
    recorded_at: datetime,
) -> tuple[int, bool, str | None] | None:
    """PostgreSQL only: insert the inbox row `event_row` unless its slot is taken and, if it
    was inserted, the whole effect and the ERP document with it, in one statement.
    `source.event_id` is not used.

    Returns `(new event id, True, None)` when inserted; `(id, False, content_hash)` of the event
    holding the slot when it was taken (then nothing is written); None when it was taken by a
    transaction that committed after this statement began, whose row it cannot see."""
    sql, params = event_with_effect(conn.dialect, event_row, source, effect, recorded_at)
    row = first_row(conn, sql, params)
    return None if row is None else (row[0], row[1], row[2])
