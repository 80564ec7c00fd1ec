"""NewStore's event envelope and the payloads of the six handled events.

Models ignore unknown fields (NewStore adds fields over time; the raw body keeps them) and accept
the location-field aliases seen in real traffic. Validation errors become the precise reason an
event is quarantined, so every message names the field and the rule.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
)

# Whole units; the bound keeps every sum far inside a 64-bit column.
MAX_QUANTITY = 1_000_000_000
MAX_TEXT = 1000
MAX_CHUNKS = 100_000

_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 with 0-9 fractional digits and `Z`, an offset or nothing (then UTC).

    Digits beyond the sixth are dropped (microsecond precision); the result is always UTC.
    """
    if isinstance(value, datetime):
        parsed = value
    else:
        if not isinstance(value, str):
            raise ValueError("expected an ISO-8601 timestamp string")
        match = _TIMESTAMP.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"not an ISO-8601 timestamp: {_clip(value)!r}")
        day, clock, fraction, zone = match.groups()
        text = f"{day}T{clock or '00:00'}"
        if fraction:
            text += "." + fraction[:6].ljust(6, "0")
        if zone and zone not in ("Z", "z", "UTC"):
            sign, digits = zone[0], zone[1:].replace(":", "")
            text += f"{sign}{digits[:2]}:{digits[2:4] or '00'}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a valid date and time: {_clip(value)!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"out of range once converted to UTC: {_clip(str(value))!r}") from None


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _clean_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded for storage.
    if value.isascii() and "\x00" not in value and len(value) <= MAX_TEXT:
        return value  # the common case, checked without encoding a copy
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("invalid unicode (lone surrogate)") from None
    if len(value) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    return value


def _clean_identifiers(value: dict[str, Any]) -> dict[str, Any]:
    # Passed on to the ERP as they are, so they must be storable text all the way down.
    def check(item: Any, depth: int = 0) -> None:
        if depth > 10:
            raise ValueError("nested too deeply")
        if isinstance(item, str):
            _clean_text(item)
        elif isinstance(item, dict):
            for key, nested in item.items():
                _clean_text(key)
                check(nested, depth + 1)
        elif isinstance(item, list):
            for nested in item:
                check(nested, depth + 1)

    check(value)
    return value


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"negative quantity {value} is not allowed")
    if value > MAX_QUANTITY:
        raise ValueError(f"quantity {value} exceeds {MAX_QUANTITY}")
    return value


def _bounded(value: int) -> int:
    if abs(value) > MAX_QUANTITY:
        raise ValueError(f"{value} exceeds {MAX_QUANTITY} in magnitude")
    return value


def _chunk(value: Any) -> Any:
    return 1 if value is None else _whole_number(value)


Timestamp = Annotated[datetime, PlainValidator(parse_timestamp)]
Text = Annotated[str, AfterValidator(_clean_text)]
Quantity = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_not_negative)]
SignedQuantity = Annotated[int, BeforeValidator(_whole_number), AfterValidator(_bounded)]
ChunkNumber = Annotated[int, BeforeValidator(_chunk), Field(ge=1, le=MAX_CHUNKS)]
Identifiers = Annotated[dict[str, Any], AfterValidator(_clean_identifiers)]


class Inbound(BaseModel):
    """Base of inbound models: unknown fields ignored, numbers accepted where ids are text."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, frozen=True)


class Envelope(Inbound):
    # The envelope's fields are names, never numbers: a numeric tenant is a sender's bug.
    model_config = ConfigDict(coerce_numbers_to_str=False)

    tenant: Annotated[Text, Field(min_length=1)]
    name: Annotated[Text, Field(min_length=1)]
    published_at: Timestamp | None = None
    payload: dict[str, Any]


class Line(Inbound):
    product_id: Annotated[Text, Field(min_length=1)]
    quantity: Quantity
    external_identifiers: Identifiers | None = None


class Transaction(Inbound):
    id: Annotated[Text, Field(min_length=1)]
    chunk_number: ChunkNumber = 1
    total_chunks: (
        Annotated[int, BeforeValidator(_whole_number), Field(ge=1, le=MAX_CHUNKS)] | None
    ) = None


class ItemsReceived(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_location_id", "fulfillment_node_id")
    )
    processed_at: Timestamp | None = None
    asn_id: Text | None = None
    order_ref: Text | None = None
    shipment_ref: Text | None = None
    items: list[Line]


class AdjustmentCreated(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_node_id", "fulfillment_location_id")
    )
    processed_at: Timestamp | None = None
    adjustment_type: Text | None = None
    adjustment_reason: Text | None = None
    origin_stock_location_name: Text | None = None
    destination_stock_location_name: Text | None = None
    note: Text | None = None
    items: list[Line]


class HandoverLine(Line):
    quantity: Annotated[Quantity, BeforeValidator(lambda v: 1 if v is None else v)] = 1


class ItemsReadyForHandover(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_location_id", "fulfillment_node_id", "origin_id")
    )
    processed_at: Timestamp | None = None
    transfer_order_ref: Text | None = None
    shipment_ref: Text | None = None
    order_ref: Text | None = None
    items: list[HandoverLine]


class AsnCreated(Transaction):
    location_id: Text = Field(validation_alias=AliasChoices("origin_id"))
    destination_location_id: Text | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "destination_location_id", "destination_id", "to_location_id"
        ),
    )
    shipment_date: Timestamp | None = None
    transfer_order_ref: Text | None = None
    shipment_ref: Text | None = None
    items: list[Line]


class CountLine(Inbound):
    product_id: Annotated[Text, Field(min_length=1)]
    count: Quantity
    # NewStore's own on-record figure; it can legitimately be negative.
    stock_on_hand: SignedQuantity
    stock_location: Text | None = Field(
        default=None, validation_alias=AliasChoices("stock_location", "stock_location_name")
    )


class ItemsCounted(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_location_id", "fulfillment_node_id")
    )
    completed_at: Timestamp | None = None
    count_type: Text | None = None
    stock_location: Text | None = Field(
        default=None, validation_alias=AliasChoices("stock_location", "stock_location_name")
    )
    items: list[CountLine]


class ReturnLine(Line):
    condition_code: Text | None = None
    item_condition: Text | None = None
    return_reason: Text | None = None


class ReturnProcessed(Transaction):
    location_id: Text = Field(validation_alias=AliasChoices("return_location_id"))
    returned_at: Timestamp | None = None
    order_id: Text | None = None
    items: list[ReturnLine]


HandledPayload = (
    ItemsReceived
    | AdjustmentCreated
    | ItemsReadyForHandover
    | AsnCreated
    | ItemsCounted
    | ReturnProcessed
)

# Fast path. Most of validation time went to the Python validators on every line. A UTF-8 body
# with no `\u0000` escape cannot hold a string with NUL (raw control characters are not JSON),
# and pydantic refuses lone surrogates natively, so the lines of such a body can be checked by
# native constraints alone. A UTF-16 or UTF-32 body (json.loads reads those too) always has NUL
# bytes, so it takes the full models. The fast models accept a subset of what the full models
# accept, with the same result; whatever they refuse (a float quantity, say) is validated again
# by the full models, which also word the error. Subclasses, so that everything downstream sees
# the same types.
_FastText = Annotated[str, Field(max_length=MAX_TEXT)]
_FastProductId = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
_FastQuantity = Annotated[int, Strict(), Field(ge=0, le=MAX_QUANTITY)]
_FastSignedQuantity = Annotated[int, Strict(), Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]


class _FastLine(Line):
    product_id: _FastProductId
    quantity: _FastQuantity


class _FastHandoverLine(HandoverLine):
    product_id: _FastProductId
    quantity: _FastQuantity = 1


class _FastCountLine(CountLine):
    product_id: _FastProductId
    count: _FastQuantity
    stock_on_hand: _FastSignedQuantity


class _FastReturnLine(ReturnLine):
    product_id: _FastProductId
    quantity: _FastQuantity
    condition_code: _FastText | None = None
    item_condition: _FastText | None = None
    return_reason: _FastText | None = None


class _FastItemsReceived(ItemsReceived):
    items: list[_FastLine]  # type: ignore[assignment]


class _FastAdjustmentCreated(AdjustmentCreated):
    items: list[_FastLine]  # type: ignore[assignment]


class _FastItemsReadyForHandover(ItemsReadyForHandover):
    items: list[_FastHandoverLine]  # type: ignore[assignment]


class _FastAsnCreated(AsnCreated):
    items: list[_FastLine]  # type: ignore[assignment]


class _FastItemsCounted(ItemsCounted):
    items: list[_FastCountLine]  # type: ignore[assignment]


class _FastReturnProcessed(ReturnProcessed):
    items: list[_FastReturnLine]  # type: ignore[assignment]


PAYLOAD_MODELS: dict[str, type[HandledPayload]] = {
    "inventory_transaction.items_received": ItemsReceived,
    "inventory_transaction.adjustment_created": AdjustmentCreated,
    "inventory_transaction.items_ready_for_handover": ItemsReadyForHandover,
    "inventory_transaction.asn_created": AsnCreated,
    "inventory_count.items_counted": ItemsCounted,
    "return.processed": ReturnProcessed,
}


_FAST_MODELS: dict[type[HandledPayload], type[HandledPayload]] = {
    ItemsReceived: _FastItemsReceived,
    AdjustmentCreated: _FastAdjustmentCreated,
    ItemsReadyForHandover: _FastItemsReadyForHandover,
    AsnCreated: _FastAsnCreated,
    ItemsCounted: _FastItemsCounted,
    ReturnProcessed: _FastReturnProcessed,
}


def validate_payload(
    model: type[HandledPayload], payload: dict[str, Any], body: bytes
) -> HandledPayload:
    """`model.model_validate(payload)`, on the fast path when `body` allows it."""
    if b"\x00" not in body and b"\\u0000" not in body:
        try:
            return _FAST_MODELS[model].model_validate(payload)
        except ValidationError:
            pass
    return model.model_validate(payload)


def describe(error: ValidationError, prefix: str = "", limit: int = 5) -> str:
    """One line per problem, `path: reason`, for the quarantine record."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:
        path = ".".join(str(p) for p in item["loc"])
        where = f"{prefix}{path}" if path else prefix.rstrip(".") or "body"
        parts.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    extra = error.error_count() - limit
    if extra > 0:
        parts.append(f"(and {extra} more)")
    return "; ".join(parts)
