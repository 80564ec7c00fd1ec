"""The one way list queries apply their optional filters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select


def narrow(
    query: Select[Any],
    equal: Iterable[tuple[ColumnElement[Any], object]] = (),
    *,
    period: ColumnElement[Any] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    aggregate: bool = False,
) -> Select[Any]:
    """Keep rows whose columns equal the given values and whose `period` lies in
    [since, until). A None value means "no filter". With `aggregate`, the period applies to an
    aggregate expression (HAVING) rather than to rows."""
    for column, value in equal:
        if value is not None:
            query = query.where(column == value)
    if period is None:
        return query
    bounds = [period >= since] if since is not None else []
    if until is not None:
        bounds.append(period < until)
    for bound in bounds:
        query = query.having(bound) if aggregate else query.where(bound)
    return query
