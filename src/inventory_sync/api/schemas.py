"""The answers of the API as pydantic models: what `/openapi.json` declares and what every
answer is validated against on its way out (`response_model`), so the document cannot drift
from the code.

The views build plain dicts; these models check and serialise them (in pydantic's Rust core,
straight to JSON). They forbid fields they do not name, so a view that grows a field fails its
tests until the contract says it. Times are the views' own UTC ISO-8601 text (`clock.iso`), kept
as text: parsing them back into datetimes would only cost time and change nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict

from inventory_sync.ledger.effects import DocumentType, Kind
from inventory_sync.views.reconciliation.transfers import TransferStatus

Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""UTC, ISO-8601 with `Z`."""

EventStatus = Literal["accepted", "ignored", "quarantined", "dismissed"]
MessageStatus = Literal["pending", "delivered", "dead"]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


ItemT = TypeVar("ItemT", bound=Answer)


class Page(Answer, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class IntakeAnswer(Answer):
    """What a webhook delivery, or a replay, came to."""

    status: Literal["accepted", "duplicate", "ignored", "quarantined"]
    event_id: int | None
    detail: str | None = Field(description="Why the event is quarantined or ignored.")


class Event(Answer):
    id: int
    tenant: str | None
    name: str | None
    status: EventStatus
    error: str | None = Field(description="Why it is quarantined.")
    received_at: Time
    payload_id: str | None
    chunk_number: int | None
    total_chunks: int | None
    location_id: str | None
    occurred_at: Time | None
    published_at: Time | None
    processed_at: Time | None
    replayed_at: Time | None
    content_type: str | None
    dismissed_at: Time | None
    dismissed_by: str | None = Field(description="Who set it aside, and the admin token's mark.")
    dismiss_reason: str | None
    body_purged_at: Time | None = Field(description="When retention removed its raw body.")


class Movement(Answer):
    id: int
    tenant: str
    location_id: str
    stock_location: str
    product_id: str
    quantity: int = Field(description="Signed: negative takes stock out.")
    kind: Kind
    occurred_at: Time
    recorded_at: Time
    event_id: int
    event_name: str | None
    line_number: int
    references: dict[str, Any]


class SyncMessage(Answer):
    id: str
    type: DocumentType
    status: MessageStatus
    attempts: int = Field(description="Tries that spent the retry budget.")
    next_attempt_at: Time | None = Field(description="When pending: when it is next tried.")
    last_error: str | None
    last_status_code: int | None
    event_id: int
    tenant: str
    location_id: str
    created_at: Time
    updated_at: Time
    delivered_at: Time | None
    claimed_by: str | None
    claimed_until: Time | None


class Attempt(Answer):
    attempted_at: Time
    status_code: int | None
    error: str | None
    duration_ms: int
    outcome: str
    worker: str | None


class ErpSource(Answer):
    event_name: str
    event_id: str = Field(description="NewStore's `payload.id`.")
    chunk_number: int
    total_chunks: int | None
    published_at: Time | None


@with_config(ConfigDict(extra="forbid"))
class ErpLine(TypedDict):
    """A line as documents hold it: the keys of other kinds of document are absent, not null."""

    product_id: str
    stock_location: str
    quantity_delta: int
    external_identifiers: NotRequired[dict[str, Any]]
    counted: NotRequired[int]
    stock_on_hand: NotRequired[int]
    quantity_shipped: NotRequired[int]


class ErpDocument(Answer):
    """What the ERP receives (docs/erp-documents.md)."""

    id: str
    type: DocumentType
    tenant: str
    location_id: str
    occurred_at: Time
    source: ErpSource
    references: dict[str, Any]
    lines: list[ErpLine]


class SyncMessageDetail(SyncMessage):
    document: ErpDocument
    attempt_log: list[Attempt] = Field(description="Every delivery attempt, oldest first.")


class EventDetail(Event):
    raw_body_kept: bool
    raw_body_bytes: int
    raw_body: str | None = Field(description="The body as text when it is UTF-8 (up to 1 MiB).")
    raw_body_base64: str | None = Field(description="The body in base64 when it is not UTF-8.")
    movements: list[Movement] = Field(description="Its first 1,000 ledger movements.")
    movements_total: int
    erp_message: SyncMessage | None


class LastCount(Answer):
    counted: int
    stock_on_hand: int
    counted_at: Time


class StockPosition(Answer):
    tenant: str
    location_id: str
    stock_location: str
    product_id: str
    on_hand: int
    anchored: bool = Field(description="Whether a count anchors the position.")
    last_count: LastCount | None


class TransferLine(Answer):
    product_id: str
    shipped: int
    received: int
    difference: int = Field(description="received - shipped")


class Transfer(Answer):
    tenant: str
    asn_id: str
    origin_location_id: str
    destination_location_id: str | None = Field(
        description="The store whose receipts matched; null while nothing is received."
    )
    named_destination_location_id: str | None = Field(description="The ASN's own, if it names one.")
    transfer_order_ref: str | None
    shipment_ref: str | None
    shipped_at: Time
    status: TransferStatus
    reason: str | None = Field(description="Why it is a `discrepancy`.")
    shipped: int
    received: int
    lines: list[TransferLine]


class ReceivedLine(Answer):
    product_id: str
    received: int


class UnmatchedReceipt(Answer):
    event_id: int
    tenant: str
    payload_id: str
    chunk_number: int
    location_id: str
    asn_id: str | None
    shipment_ref: str | None
    occurred_at: Time | None
    lines: list[ReceivedLine]


class CountedLine(Answer):
    id: int
    tenant: str
    count_id: str
    event_id: int
    location_id: str
    stock_location: str
    product_id: str
    counted: int
    stock_on_hand: int
    variance: int = Field(description="counted - stock_on_hand")
    expected: int | None = Field(description="Our position just before the count, if anchored.")
    drift: int | None = Field(
        description="stock_on_hand - expected: units NewStore booked that the ledger has not."
    )
    anchored: bool
    anchor_counted_at: Time | None
    counted_at: Time


class ChunkSet(Answer):
    tenant: str
    event_name: str
    payload_id: str
    total_chunks: int
    received_chunks: int
    missing_chunks: list[int] = Field(description="The first 1,000 chunk numbers missing.")
    missing_count: int
    quarantined_chunks: list[int] = Field(description="Missing chunks stored but quarantined.")
    first_received_at: Time
    last_received_at: Time


class Completeness(Answer):
    """One store: where events are being lost."""

    tenant: str
    location_id: str
    last_counted_at: Time | None
    counted_lines: int = Field(description="Anchored count lines since `since`.")
    lines_with_drift: int
    drift_units: int = Field(description="The sum of their absolute drifts.")
    stale_incomplete_chunk_sets: int
    quarantined_events: int
    score: float | None = Field(description="The share of counted lines with zero drift.")


class ErpStockDifference(Answer):
    location_id: str
    stock_location: str
    product_id: str
    on_hand: int = Field(description="Ours, as `/v1/stock` says.")
    erp_quantity: int | None = Field(description="The ERP's; null when it has none.")
    difference: int | None = Field(description="erp_quantity - on_hand")
    reason: str | None = Field(description="Why the ERP has no quantity.")


class ErpStockComparison(Answer):
    adapter: str
    compared: int = Field(description="Positions compared.")
    items: list[ErpStockDifference] = Field(
        description="Every position whose ERP quantity differs or is unknown."
    )


class TransferCounts(Answer):
    in_transit: int
    partially_received: int
    received: int
    discrepancy: int
    total: int


class DriftedCounts(Answer):
    drifted_lines: int


class IncompleteChunks(Answer):
    incomplete_sets: int


class Backlog(Answer):
    pending: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float | None


class WaitingEvents(Answer):
    quarantined: int
    dismissed: int = Field(description="Set aside by an admin; no longer counted as quarantined.")


class Summary(Answer):
    events: WaitingEvents
    transfers: TransferCounts
    unmatched_receipts: int
    unmatched_receipt_asn_ids: list[str] = Field(description="The first five ASN ids they name.")
    counts: DriftedCounts
    chunks: IncompleteChunks
    sync: Backlog


class Dismissed(Answer):
    dismissed: int = Field(description="How many quarantined events were dismissed.")


class Retried(Answer):
    retried: int = Field(description="How many dead messages went back to pending.")
    failed: int = Field(description="No longer dead when retried: handled meanwhile.")
    remaining: int = Field(description="Dead messages still matching: call again for them.")


class BulkReplay(Answer):
    replayed: int = Field(description="Events that left quarantine.")
    failed: int = Field(description="Events still quarantined, each with its new reason.")
    remaining: int = Field(description="Matching events this call did not reach.")
    outcomes: dict[str, int] = Field(description="Replays by the status they came to.")
    next_after: int | None = Field(description="Pass as `after` to go on; null when done.")


# One class per listing, so each has a name of its own in the OpenAPI document.
class EventPage(Page[Event]):
    """A page of stored events."""


class MovementPage(Page[Movement]):
    """A page of ledger movements."""


class StockPage(Page[StockPosition]):
    """A page of stock positions."""


class TransferPage(Page[Transfer]):
    """A page of transfers."""


class UnmatchedReceiptPage(Page[UnmatchedReceipt]):
    """A page of receipts naming an ASN never seen."""


class CountPage(Page[CountedLine]):
    """A page of counted lines."""


class ChunkSetPage(Page[ChunkSet]):
    """A page of incomplete chunk sets."""


class CompletenessPage(Page[Completeness]):
    """A page of stores."""


class SyncMessagePage(Page[SyncMessage]):
    """A page of ERP sync messages."""


class Alive(Answer):
    status: Literal["ok"]


class Ready(Answer):
    status: Literal["ready"]
    schema_: str = Field(alias="schema", description="The migrations' head the schema is at.")


class NotReady(Answer):
    status: Literal["not_ready"]
    reason: str
