"""The transactional outbox of ERP documents and the log of every delivery attempt."""

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from inventory_sync.db import Id, UTCDateTime, metadata

outbox_message = Table(
    "outbox_message",
    metadata,
    # Derived from the event's dedupe key, so a redelivered or replayed event keeps its id;
    # sent as Idempotency-Key and webhook-id.
    Column("id", String(64), primary_key=True),
    # No foreign key: written with its event by ledger.service (see ledger_movement).
    Column("event_id", Id, nullable=False, unique=True),
    Column("tenant", Text, nullable=False),
    Column("type", String(64), nullable=False),
    Column("location_id", Text, nullable=False),
    Column("document", Text, nullable=False),
    # pending | delivered | dead
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # A lease: while claimed_until is in the future, only claimed_by may deliver the message.
    # A worker that dies simply lets its lease run out.
    Column("claimed_by", Text),
    Column("claimed_until", UTCDateTime()),
    Column("last_error", Text),
    Column("last_status_code", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Index(None, "status", "next_attempt_at"),
    Index(None, "type"),
)

sync_attempt = Table(
    "sync_attempt",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(64), ForeignKey("outbox_message.id"), nullable=False),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    # delivered | retry | dead
    Column("outcome", String(16), nullable=False),
    Column("worker", Text),
    Index(None, "message_id", "id"),
)
