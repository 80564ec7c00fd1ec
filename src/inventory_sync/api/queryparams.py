"""Query parameters shared by the ops endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query

from inventory_sync.clock import parse_timestamp
from inventory_sync.errors import ServiceError

TimeQuery = Annotated[
    str | None, Query(max_length=64, description="ISO-8601; no offset means UTC.")
]
# PostgreSQL text cannot hold NUL: refuse it as a bad parameter rather than fail in the query.
TextQuery = Annotated[str | None, Query(max_length=1000, pattern=r"^[^\x00]*$")]
Order = Annotated[
    Literal["asc", "desc"],
    Query(description="`desc`: newest first (the default); `asc`: oldest first."),
]


class BadParameter(ServiceError):
    status_code = 422
    code = "invalid_parameter"


def timestamp(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as error:
        raise BadParameter(f"{name}: {error}") from None
