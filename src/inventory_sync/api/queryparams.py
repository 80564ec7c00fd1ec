"""Query parameters shared by the ops endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Query

from inventory_sync.clock import parse_timestamp
from inventory_sync.errors import ServiceError
from inventory_sync.views.events import EventFilter
from inventory_sync.views.outbox import MessageFilter

TimeQuery = Annotated[
    str | None, Query(max_length=64, description="ISO-8601; no offset means UTC.")
]
# PostgreSQL text cannot hold NUL: refuse it as a bad parameter rather than fail in the query.
TextQuery = Annotated[str | None, Query(max_length=1000, pattern=r"^[^\x00]*$")]
# Message types are printable ASCII, as every id the service issues is.
TypeQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[!-~]+$")]
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


def event_filter(
    name: TextQuery = None,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    payload_id: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
) -> EventFilter:
    """The filters of `GET /v1/events` but its `status`; `since`/`until` on `received_at`."""
    return EventFilter(
        name=name,
        tenant=tenant,
        location_id=location_id,
        payload_id=payload_id,
        since=timestamp("since", since),
        until=timestamp("until", until),
    )


def message_filter(
    type: TypeQuery = None,
    tenant: TextQuery = None,
    location_id: TextQuery = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    error: TextQuery = None,
) -> MessageFilter:
    """The filters of `GET /v1/sync/messages` but its `status` and `event_id`."""
    return MessageFilter(
        type=type,
        tenant=tenant,
        location_id=location_id,
        since=timestamp("since", since),
        until=timestamp("until", until),
        error=error,
    )


EventFilterQuery = Annotated[EventFilter, Depends(event_filter)]
MessageFilterQuery = Annotated[MessageFilter, Depends(message_filter)]
