"""The append-only ledger and the observations reconciliation needs.

Rows here are only ever inserted: a correction is a new movement, never an update.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from inventory_sync.db import Id, PositionKey, UTCDateTime, metadata

# The hottest table: one row per line of every event. Its `event_id` has no foreign key and
# (event_id, line_number, leg) no unique index: each cost a lookup or an index entry per row,
# about a fifth of PostgreSQL's intake time (docs/performance.md). Rows are only written by
# ledger.service, for an event stored before or in the same statement, once per event: the
# inbox slot decides at intake, and a replay applies only a quarantined event it holds locked;
# tests check both. A BRIN index, nearly free to maintain because event ids grow with insertion
# order, finds an event's rows; ranges are summarised as they fill, not only by VACUUM.
# The same holds for the other rows ledger.service writes with an event (count observations,
# shipment lines, the outbox message), so their `event_id` has no foreign key either: each key
# check is a lookup plus a lock on the event's row.
# One B-tree serves both a position's movements (stock on hand, count drift) and a product's
# history: it leads with `product_id`, the column that tells rows apart. Led by `tenant`, which
# rarely differs, every comparison in an insert walked three equal text columns, and product
# queries needed a second index: together twice the index cost per ledger row. Filters on
# location without product read the table, as listing every position does anyway; when
# `tenant` led, they used the index only if a tenant was given too.
# The event's name is read from the event (a join on its primary key), not repeated on every
# row, where it was a quarter of the row's bytes.
POSITION_INDEX_KEY = ("product_id", "location_id", "stock_location", "tenant")

ledger_movement = Table(
    "ledger_movement",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, nullable=False),
    Column("tenant", PositionKey, nullable=False),
    Column("location_id", PositionKey, nullable=False),
    Column("stock_location", PositionKey, nullable=False),
    Column("product_id", PositionKey, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("line_number", Integer, nullable=False),
    # 0 for the only or debit side of a line, 1 for the credit side of a move.
    Column("leg", SmallInteger, nullable=False),
    Column("references", JSON, nullable=False),
    Index(
        "ix_ledger_movement_event_id",
        "event_id",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    ),
    Index(
        "ix_ledger_movement_position",
        *POSITION_INDEX_KEY,
        "occurred_at",
    ),
)

count_observation = Table(
    "count_observation",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, nullable=False),
    Column("tenant", PositionKey, nullable=False),
    Column("count_id", Text, nullable=False),
    Column("chunk_number", Integer, nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("location_id", PositionKey, nullable=False),
    Column("stock_location", PositionKey, nullable=False),
    Column("product_id", PositionKey, nullable=False),
    Column("counted", BigInteger, nullable=False),
    Column("stock_on_hand", BigInteger, nullable=False),
    Column("counted_at", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id", "line_number"),
    Index(
        "ix_count_observation_position",
        *POSITION_INDEX_KEY,
        "counted_at",
    ),
)

shipment_line = Table(
    "shipment_line",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("asn_id", Text, nullable=False),
    Column("chunk_number", Integer, nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("origin_location_id", Text, nullable=False),
    Column("destination_location_id", Text),
    Column("transfer_order_ref", Text),
    Column("shipment_ref", Text),
    Column("product_id", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("shipped_at", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id", "line_number"),
    Index(None, "tenant", "asn_id"),
    Index(None, "tenant", "shipment_ref"),
)
