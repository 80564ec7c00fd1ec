"""Opaque cursors for keyset pagination: `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

import orjson
from fastapi import Query, Response

from inventory_sync.errors import BadCursor

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size, 1 to 1000.")]
Cursor = Annotated[
    str | None, Query(max_length=2000, description="`next_cursor` of the previous page.")
]


def encode(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, kinds: tuple[type, ...]) -> list[Any] | None:
    """The position a cursor points after, or None for the first page.

    `kinds` gives the type of each part of the position; anything else is refused.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays nested deeper than the parser goes; no cursor of ours nests.
        raise BadCursor("cursor is not one this service issued") from None
    if (
        not isinstance(position, list)
        or len(position) != len(kinds)
        or not all(map(_storable, position, kinds))
    ):
        raise BadCursor("cursor is not one this service issued")
    return position


def _storable(part: Any, kind: type) -> bool:
    """A value of `kind` that any column can be compared with: a 64-bit integer, or text
    without NUL that encodes as UTF-8 (a forged `\\ud800` does not)."""
    if not isinstance(part, kind) or isinstance(part, bool):
        return False
    if isinstance(part, int):
        return -(2**63) <= part < 2**63
    if isinstance(part, str):
        if "\x00" in part:
            return False
        try:
            part.encode()
        except UnicodeEncodeError:
            return False
    return True


def page(items: list[dict[str, Any]], limit: int, position_of: Any) -> dict[str, Any]:
    """Build a page from up to `limit + 1` fetched rows."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode(position_of(items[-1])) if more else None}


def answer(items: list[dict[str, Any]], limit: int, position_of: Any) -> Response:
    """`page()` as the JSON answer of a listing.

    Encoded as the views built it, not validated on the way out: the route's `response_model`
    (`api.schemas.Page`) declares it, and the tests check served pages against the declaration.
    Validating 1,000 rows would add about an eighth to the cost of a full page
    (docs/performance.md, bench/listing.py).
    """
    return Response(orjson.dumps(page(items, limit, position_of)), media_type="application/json")
