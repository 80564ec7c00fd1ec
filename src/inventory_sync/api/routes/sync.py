"""ERP sync ops: `GET /v1/sync/messages`, one message with its attempts, and retry."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from inventory_sync.api import csv_export, pagination
from inventory_sync.api.auth import AdminAccess, ReadAccess
from inventory_sync.api.deps import DatabaseDep
from inventory_sync.api.problems import responses
from inventory_sync.api.queryparams import MessageFilterQuery, Order
from inventory_sync.api.schemas import (
    MessageStatus,
    Retried,
    SyncMessageDetail,
    SyncMessagePage,
)
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import outbox
from inventory_sync.errors import NotFound, ServiceError
from inventory_sync.ops import bulk
from inventory_sync.views import outbox as outbox_view

router = APIRouter(prefix="/v1/sync", tags=["erp sync"])
# Printable ASCII, as every id the service issues is: anything else names no message, and
# some of it (NUL) no database could even look up.
MessageId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[!-~]+$")]


CSV_COLUMNS = [
    "id",
    "type",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "last_status_code",
    "event_id",
    "tenant",
    "location_id",
    "created_at",
    "updated_at",
    "delivered_at",
    "claimed_by",
    "claimed_until",
]


class AlreadyDelivered(ServiceError):
    status_code = 409
    code = "already_delivered"


@router.get("/messages", response_model=SyncMessagePage, responses=csv_export.RESPONSES)
def list_messages(
    db: DatabaseDep,
    _role: ReadAccess,
    matching: MessageFilterQuery,
    status: MessageStatus | None = None,
    event_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    order: Order = "desc",
    format: csv_export.Format = "json",
    limit: pagination.Limit = 100,
    cursor: pagination.Cursor = None,
) -> Any:
    """Outbox messages, one per accepted event, newest event first (`order=asc`: in the
    order the events were accepted); pass the same `order` with a `next_cursor` as with the
    page that gave it.
    `attempts` counts the tries that spend the retry budget; tries made while the ERP was
    down are in the message's `attempt_log` but not counted. `since`/`until` filter on
    `updated_at` (for a dead message, when it died; `until` exclusive); `error` keeps messages
    whose `last_error` contains it, in any case. `format=csv` streams every matching message,
    without its document."""
    where = replace(matching, status=status, event_id=event_id)
    newest_first = order == "desc"

    def fetch(conn: Any, size: int, after: int | None) -> list[dict[str, Any]]:
        return outbox_view.list_messages(conn, where, size, after, newest_first)

    if format == "csv":
        every = csv_export.every_row(db, fetch, lambda row: row["event_id"])
        return csv_export.response("sync-messages", CSV_COLUMNS, every)
    position = pagination.decode(cursor, (int,))
    with db.snapshot() as conn:
        rows = fetch(conn, limit + 1, int(position[0]) if position else None)
    return pagination.answer(rows, limit, lambda row: [row["event_id"]])


@router.get(
    "/messages/{message_id}",
    response_model=SyncMessageDetail,
    responses=responses("not_found", "csv_unavailable"),
)
def get_message(
    db: DatabaseDep,
    _role: ReadAccess,
    message_id: MessageId,
    format: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> Any:
    """One message with its document and every delivery attempt (`attempt_log`: time, status
    code, error, duration, outcome), oldest first."""
    csv_export.refuse(format, "a sync message")
    with db.snapshot() as conn:
        body = outbox_view.get_message(conn, message_id)
    if body is None:
        raise NotFound(f"no sync message {message_id}")
    return body


@router.post("/messages/retry", response_model=Retried)
def retry_dead(
    db: DatabaseDep,
    _role: AdminAccess,
    where: MessageFilterQuery,
    max: Annotated[int, Query(ge=1, le=bulk.MAX_RETRY)] = bulk.MAX_RETRY,
) -> Any:
    """Up to `max` `dead` messages matching the filters (those of `GET /v1/sync/messages`)
    back to `pending`, attempts reset, due now, oldest event first. Answers `retried`,
    `failed` (no longer dead when retried: handled meanwhile) and `remaining` (dead messages
    still matching; call again for them)."""
    done = bulk.retry_matching(db, where, max, utcnow())
    return {"retried": done.retried, "failed": done.failed, "remaining": done.remaining}


@router.post(
    "/messages/{message_id}/retry",
    response_model=SyncMessageDetail,
    responses=responses("not_found", "already_delivered"),
)
def retry_message(db: DatabaseDep, _role: AdminAccess, message_id: MessageId) -> Any:
    """Deliver one message again now: a `dead` one goes back to `pending` with its attempts
    reset; a `pending` one is made due at once. A delivered message answers 409."""
    with db.transaction() as conn:
        before = outbox.retry(conn, message_id, utcnow())
        body = outbox_view.get_message(conn, message_id)
    if before is None or body is None:
        raise NotFound(f"no sync message {message_id}")
    if before == outbox.DELIVERED:
        raise AlreadyDelivered(f"sync message {message_id} is already delivered")
    return body
