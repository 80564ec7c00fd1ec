"""Intake and ERP backlog hour by hour over the last hours, for the console's charts.

Hours are bucketed with plain comparisons (a CASE over the hours' starts), the same on every
backend, rather than a dialect's date functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, not_, or_, select
from sqlalchemy.engine import Connection

from inventory_sync.storage.tables import inbound_event, outbox_message

HOUR = timedelta(hours=1)


def hour_starts(now: datetime, hours: int) -> list[datetime]:
    """The starts of the last `hours` hours, oldest first; the last one is the current hour."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * (hours - 1 - n) for n in range(hours)]


def intake_by_hour(conn: Connection, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Events received in each of the last `hours` hours by status, oldest hour first:
    `{"hour": start, "accepted": n, "ignored": n, "quarantined": n}`."""
    e = inbound_event
    starts = hour_starts(now, hours)
    bucket = case(
        *[(e.c.received_at >= start, literal(n)) for n, start in reversed(list(enumerate(starts)))],
        else_=literal(-1),
    ).label("bucket")
    rows = conn.execute(
        select(bucket, e.c.status, func.count())
        .where(e.c.received_at >= starts[0])
        .group_by(bucket, e.c.status)
    )
    series: list[dict[str, Any]] = [
        {"hour": start, "accepted": 0, "ignored": 0, "quarantined": 0} for start in starts
    ]
    for n, status, number in rows:
        if 0 <= n < hours:
            series[n][status] = int(number)
    return series


def backlog_by_hour(conn: Connection, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Messages undelivered at the end of each of the last `hours` hours (for the current
    hour: now), oldest first: `{"hour": start, "pending": n}`.

    Pending at a time is created by then, not delivered by then and not dead by then (when a
    dead message died is its `updated_at`). A dead message retried since counts as pending
    from its retry only: the outbox keeps no history of its states.
    """
    m = outbox_message
    starts = hour_starts(now, hours)
    ends = [*starts[1:], now]

    def pending_at(moment: datetime) -> Any:
        return func.sum(
            case(
                (
                    and_(
                        m.c.created_at <= moment,
                        or_(m.c.delivered_at.is_(None), m.c.delivered_at > moment),
                        not_(and_(m.c.status == "dead", m.c.updated_at <= moment)),
                    ),
                    1,
                ),
                else_=0,
            )
        )

    row = conn.execute(
        select(*[pending_at(end) for end in ends]).where(
            m.c.created_at <= now,
            or_(m.c.delivered_at.is_(None), m.c.delivered_at > starts[0]),
        )
    ).one()
    return [
        {"hour": start, "pending": int(value or 0)}
        for start, value in zip(starts, row, strict=True)
    ]
