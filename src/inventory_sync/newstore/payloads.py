"""NewStore's wire contract: the event envelope and the payloads of the seven handled events.

One model set, for every body. Models ignore unknown fields (NewStore adds fields over time; the
raw body keeps them) and accept the location-field aliases seen in real traffic.

Fields that repeat on every item line are checked by pydantic's own constraints, so a line of
the usual shape (text ids, integer quantities) never reaches Python code: at hundreds of lines
per event, a Python validator per field was most of validation's cost. What those constraints
cannot say takes a union branch that only unusual values reach (a quantity written `6.0` or
`"6"`), and the text checks they cannot make (NUL, lone surrogates) run once per body
(`newstore.validation`). Per-event fields may use Python validators.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainValidator,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic_core import core_schema

from inventory_sync.clock import parse_timestamp
from inventory_sync.settings import LINES_LIMIT

# Whole units; the bound keeps every sum far inside a 64-bit column.
MAX_QUANTITY = 1_000_000_000
MAX_TEXT = 1000
MAX_CHUNKS = 100_000
MAX_NESTING = 10
# A fulfillment event's logical timestamp is a 64-bit ordering number (milliseconds in samples).
MAX_LOGICAL_TIMESTAMP = 2**63 - 1


def _as_whole(value: float | str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, not {value[:20]!r}") from None
    if not value.is_integer():
        raise ValueError("expected a whole number")
    return int(value)


def _whole_number(low: int, high: int, low_message: str, high_message: str) -> GetPydanticSchema:
    """An integer in [low, high], checked natively when it is written as one. A whole number
    written as a float or a string, or an integer out of range, takes a branch that names the
    bound in words; the branches are labelled `whole:*` for `validation.describe()`."""

    def check(value: float | str) -> int:
        number = _as_whole(value)
        if number < low:
            raise ValueError(low_message.format(number))
        if number > high:
            raise ValueError(high_message.format(number))
        return number

    schema = core_schema.union_schema(
        [
            (core_schema.int_schema(strict=True, ge=low, le=high), "whole:int"),
            (
                core_schema.no_info_after_validator_function(
                    check, core_schema.int_schema(strict=True)
                ),
                "whole:bound",
            ),
            (
                core_schema.no_info_after_validator_function(
                    check, core_schema.float_schema(strict=True)
                ),
                "whole:float",
            ),
            (
                core_schema.no_info_after_validator_function(
                    check, core_schema.str_schema(strict=True)
                ),
                "whole:str",
            ),
        ]
    )
    # What the branches accept, said once: the unbounded one only words a refusal.
    documented = {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "number", "multipleOf": 1, "minimum": low, "maximum": high},
            {"type": "string", "pattern": r"^\s*[-+]?[0-9]+\s*$"},
        ]
    }
    return GetPydanticSchema(lambda _type, _handler: schema, lambda _schema, _handler: documented)


Quantity = Annotated[
    int,
    _whole_number(
        0,
        MAX_QUANTITY,
        "negative quantity {} is not allowed",
        f"quantity {{}} exceeds {MAX_QUANTITY}",
    ),
]
LogicalTimestamp = Annotated[
    int,
    _whole_number(
        0,
        MAX_LOGICAL_TIMESTAMP,
        "negative logical timestamp {} is not allowed",
        "logical timestamp {} does not fit 64 bits",
    ),
]
SignedQuantity = Annotated[
    int,
    _whole_number(
        -MAX_QUANTITY,
        MAX_QUANTITY,
        f"{{}} exceeds {MAX_QUANTITY} in magnitude",
        f"{{}} exceeds {MAX_QUANTITY} in magnitude",
    ),
]


def _text(min_length: int) -> GetPydanticSchema:
    """Text of `min_length` to `MAX_TEXT` characters, checked natively when it is written as
    text. A number is taken as its text, as Python writes it (`3.0`, `1e+300`): some senders
    write numeric ids as JSON numbers. The branches are labelled `text:*`."""

    def as_text(value: float) -> str:
        text = str(value)
        if len(text) > MAX_TEXT:
            raise ValueError(f"longer than {MAX_TEXT} characters")
        return text

    schema = core_schema.union_schema(
        [
            (
                core_schema.str_schema(strict=True, min_length=min_length, max_length=MAX_TEXT),
                "text:str",
            ),
            (
                core_schema.no_info_after_validator_function(
                    as_text, core_schema.int_schema(strict=True)
                ),
                "text:int",
            ),
            (
                core_schema.no_info_after_validator_function(
                    # 1e400 reads as infinity: no id, or every such id would be "inf".
                    as_text,
                    core_schema.float_schema(strict=True, allow_inf_nan=False),
                ),
                "text:float",
            ),
        ]
    )
    return GetPydanticSchema(lambda _type, _handler: schema)


def _chunk(value: Any) -> Any:
    # Per event, so a Python validator is cheap here.
    if value is None:
        return 1
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _nesting(value: dict[str, Any]) -> dict[str, Any]:
    def depth(item: Any) -> int:
        if isinstance(item, dict):
            return 1 + max(map(depth, item.values()), default=0)
        if isinstance(item, list):
            return 1 + max(map(depth, item), default=0)
        if isinstance(item, float) and not math.isfinite(item):
            # JSON has no such number, and neither the database nor the ERP would take it.
            raise ValueError(
                "NaN is not allowed" if math.isnan(item) else f"{item}: a number out of range"
            )
        return 0

    if depth(value) > MAX_NESTING:
        raise ValueError("nested too deeply")
    return value


Timestamp = Annotated[
    datetime,
    PlainValidator(parse_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO-8601 with 0 to 9 fractional digits and `Z`, an offset or none "
            "(then UTC).",
        }
    ),
]
Text = Annotated[str, _text(0)]
Id = Annotated[str, _text(1)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
# The bounds before the validator, so that they belong to the integer it hands on, and the JSON
# schema says them.
ChunkNumber = Annotated[int, Field(ge=1, le=MAX_CHUNKS), BeforeValidator(_chunk)]
TotalChunks = Annotated[int, Field(ge=1, le=MAX_CHUNKS), BeforeValidator(_chunk)]
# Passed on to the ERP as they are.
Identifiers = Annotated[dict[str, Any], AfterValidator(_nesting)]

LineT = TypeVar("LineT", bound=BaseModel)
# At most LINES_LIMIT lines, and the first invalid line ends validation: a body of millions of
# bad lines costs no more than one of a single bad line.
Items = Annotated[list[LineT], Field(max_length=LINES_LIMIT, fail_fast=True)]


class Inbound(BaseModel):
    """Base of inbound models: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Line(Inbound):
    product_id: Id
    quantity: Quantity
    external_identifiers: Identifiers | None = None


class Transaction(Inbound):
    id: Id
    chunk_number: ChunkNumber = 1
    total_chunks: TotalChunks | None = None


class ItemsReceived(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_location_id", "fulfillment_node_id")
    )
    processed_at: Timestamp | None = None
    asn_id: Text | None = None
    order_ref: Text | None = None
    shipment_ref: Text | None = None
    items: Items[Line]


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
    items: Items[Line]


class HandoverLine(Inbound):
    product_id: Id
    quantity: Quantity | None = None
    """None: the line has no quantity, which counts as one unit (`ledger.effects`)."""
    external_identifiers: Identifiers | None = None


class ItemsReadyForHandover(Transaction):
    location_id: Text = Field(
        validation_alias=AliasChoices("fulfillment_location_id", "fulfillment_node_id", "origin_id")
    )
    processed_at: Timestamp | None = None
    transfer_order_ref: Text | None = None
    shipment_ref: Text | None = None
    order_ref: Text | None = None
    items: Items[HandoverLine]


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
    items: Items[Line]


class CountLine(Inbound):
    product_id: Id
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
    items: Items[CountLine]


class ReturnLine(Line):
    condition_code: Text | None = None
    item_condition: Text | None = None
    return_reason: Text | None = None


class ReturnProcessed(Transaction):
    location_id: Text = Field(validation_alias=AliasChoices("return_location_id"))
    returned_at: Timestamp | None = None
    order_id: Text | None = None
    items: Items[ReturnLine]


class SaleLine(Inbound):
    """One unit: fulfillment lines carry no quantity."""

    id: Text | None = None
    """The order item; NewStore's own consumers read it, the ledger does not need it."""
    product_id: Id
    external_identifiers: Identifiers | None = None


class ItemsCompleted(Transaction):
    """Items of a fulfillment request handed over or shipped from the store: sold.

    One fulfillment request (`id`) completes in several events, each with its own
    `logical_timestamp`, which is why that number, not a chunk number, ends the dedupe key
    (`newstore.validation.key_of`). The payload has no time of its own."""

    location_id: Text = Field(validation_alias=AliasChoices("fulfillment_location_id"))
    logical_timestamp: LogicalTimestamp
    order_id: Text | None = None
    service_level: Text | None = None
    associate_id: Text | None = None
    items: Items[SaleLine]


HandledPayload = (
    ItemsReceived
    | AdjustmentCreated
    | ItemsReadyForHandover
    | AsnCreated
    | ItemsCounted
    | ReturnProcessed
    | ItemsCompleted
)

SALE = "fulfillment_request.items_completed"

PAYLOAD_MODELS: dict[str, type[HandledPayload]] = {
    "inventory_transaction.items_received": ItemsReceived,
    "inventory_transaction.adjustment_created": AdjustmentCreated,
    "inventory_transaction.items_ready_for_handover": ItemsReadyForHandover,
    "inventory_transaction.asn_created": AsnCreated,
    "inventory_count.items_counted": ItemsCounted,
    "return.processed": ReturnProcessed,
    SALE: ItemsCompleted,
}
HANDLED = frozenset(PAYLOAD_MODELS)


class Envelope(Inbound):
    """Any event, handled or not: what NewStore wraps every payload in."""

    # The envelope's fields are names, never numbers: a numeric tenant is a sender's bug.
    tenant: Name
    name: Name
    published_at: Timestamp | None = None
    payload: dict[str, Any]


class _Event(Inbound):
    tenant: Name
    published_at: Timestamp | None = None


class ReceiptEvent(_Event):
    name: Literal["inventory_transaction.items_received"]
    payload: ItemsReceived


class AdjustmentEvent(_Event):
    name: Literal["inventory_transaction.adjustment_created"]
    payload: AdjustmentCreated


class HandoverEvent(_Event):
    name: Literal["inventory_transaction.items_ready_for_handover"]
    payload: ItemsReadyForHandover


class AsnEvent(_Event):
    name: Literal["inventory_transaction.asn_created"]
    payload: AsnCreated


class CountEvent(_Event):
    name: Literal["inventory_count.items_counted"]
    payload: ItemsCounted


class ReturnEvent(_Event):
    name: Literal["return.processed"]
    payload: ReturnProcessed


class SaleEvent(_Event):
    name: Literal["fulfillment_request.items_completed"]
    payload: ItemsCompleted


HandledEvent = (
    ReceiptEvent | AdjustmentEvent | HandoverEvent | AsnEvent | CountEvent | ReturnEvent | SaleEvent
)

# A handled event in one pass over the body: the `name` picks the payload model, in Rust.
HANDLED_EVENT: TypeAdapter[HandledEvent] = TypeAdapter(
    Annotated[HandledEvent, Field(discriminator="name")]
)
