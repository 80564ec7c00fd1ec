"""The inbox: every authenticated webhook body, stored once, byte for byte."""

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text, text

from inventory_sync.db import Id, UTCDateTime, metadata

inbound_event = Table(
    "inbound_event",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Unique slot that makes intake idempotent: a hash of the dedupe key
    # (tenant, name, payload.id, chunk_number) for the first content seen under that key, a hash
    # of key + content for a different content under a known key, a hash of the raw bytes for a
    # body that has no key at all. Hashing keeps the index small whatever the ids look like.
    Column("slot", String(80), nullable=False, unique=True),
    Column("tenant", Text),
    Column("name", Text),
    Column("payload_id", Text),
    Column("chunk_number", Integer),
    Column("total_chunks", Integer),
    # accepted | ignored | quarantined
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("content_hash", String(64)),
    Column("location_id", Text),
    Column("occurred_at", UTCDateTime()),
    Column("published_at", UTCDateTime()),
    Column("asn_id", Text),
    Column("shipment_ref", Text),
    Column("raw_body", LargeBinary, nullable=False),
    Column("content_type", Text),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("processed_at", UTCDateTime()),
    Column("replayed_at", UTCDateTime()),
    Index(None, "status", "id"),
    Index(None, "name", "id"),
    Index(None, "tenant", "payload_id"),
    Index(None, "location_id"),
    # Only ASN receipts carry these: partial indexes spare every other event two index entries.
    Index(
        None,
        "asn_id",
        postgresql_where=text("asn_id IS NOT NULL"),
        sqlite_where=text("asn_id IS NOT NULL"),
    ),
    Index(
        None,
        "shipment_ref",
        postgresql_where=text("shipment_ref IS NOT NULL"),
        sqlite_where=text("shipment_ref IS NOT NULL"),
    ),
)
