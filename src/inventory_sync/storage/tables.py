"""Every table of the service, on one `MetaData`, and the column types they share.

Features import tables from here, downward; Alembic's autogenerate and the tests read
`metadata`. Rows of the ledger, count observations, shipment lines and delivery attempts are
only ever inserted: a correction is a new row, never an update.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")

# Identifiers of a stock position (tenant, location, stock location, product) compare byte for
# byte on PostgreSQL, as every text does on SQLite. Their indexes take an entry per ledger row,
# and with the "C" collation each comparison is a memcmp instead of a locale-aware strcoll,
# which made index upkeep about a quarter cheaper (docs/performance.md). Byte order is also
# code point order, so listings sort the same way on both backends.
PositionKey = Text().with_variant(Text(collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends.

    PostgreSQL stores `timestamptz`. SQLite has no time zone type, so values are stored as naive
    UTC, whose ISO text sorts chronologically, and made aware again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 (SQLAlchemy's signature)
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# -- the inbox: every authenticated webhook body, stored once, byte for byte ------------------

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
    # accepted | ignored | quarantined | dismissed (a quarantined event an admin set aside,
    # with who, when and why below; never an answer to NewStore)
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
    Column("dismissed_at", UTCDateTime()),
    Column("dismissed_by", Text),
    Column("dismiss_reason", Text),
    # When retention emptied `raw_body` (storage.retention); the row itself stays.
    Column("body_purged_at", UTCDateTime()),
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


# -- the ledger and the observations reconciliation needs -----------------------------------

# The hottest table: one row per line of every event. Its `event_id` has no foreign key and
# (event_id, line_number, leg) no unique index: each cost a lookup or an index entry per row,
# about a fifth of PostgreSQL's intake time (docs/performance.md). Rows are only written by
# the store's write of an event (`storage.store.Store`), in the same transaction as the event,
# once per event: the inbox slot decides at intake, and a replay applies only an event still
# quarantined when it writes; tests check both. The id is not drawn from a sequence: it is
# the movement's place, `ledger.effects.movement_id(event_id, line_number, leg)`, so an
# event's rows are one range of the primary key. That spares a sequence call per row and the
# index on `event_id` that finding them took (together a tenth of PostgreSQL's time for a
# 500-line event, docs/performance.md).
# The same holds for the other rows written with an event (count observations,
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
    Column("id", Id, primary_key=True, autoincrement=False),
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


# -- the transactional outbox of ERP documents and the log of every delivery attempt --------

outbox_message = Table(
    "outbox_message",
    metadata,
    # Derived from the event's dedupe key, so a redelivered or replayed event keeps its id;
    # sent as Idempotency-Key and webhook-id.
    Column("id", String(64), primary_key=True),
    # No foreign key: written with its event (see ledger_movement).
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
    # delivered | retry | throttled | dead
    Column("outcome", String(16), nullable=False),
    Column("worker", Text),
    Index(None, "message_id", "id"),
)


# What retention deleted of the attempt log with delivered messages (storage.retention), by
# outcome: the delivery totals read from the database (`/metrics`) count these too, and so
# never go down. Only ever inserted, one row per purged batch and outcome.
purged_attempts = Table(
    "purged_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("purged_at", UTCDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("attempts", BigInteger, nullable=False),
)


# -- credentials generated for a set-up that configured none ---------------------------------

generated_credential = Table(
    "generated_credential",
    metadata,
    # webhook_key | admin_token | console_key
    Column("kind", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)


# -- Console sessions ended before their time ---------------------------------------------------

ended_console_session = Table(
    "ended_console_session",
    metadata,
    # The nonce a session cookie carries (api/console/session.py): a cookie signed for it is
    # refused from sign-out on, in every process. Kept until the cookie would have expired.
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
)


# -- ERP sync workers, as each last said it was -------------------------------------------------

erp_worker = Table(
    "erp_worker",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    # Renewed every few seconds while the worker runs (erp_sync.heartbeat).
    Column("seen_at", UTCDateTime(), nullable=False),
    # delivering | idle (no ERP configured) | misconfigured | stopped
    Column("state", String(32), nullable=False),
    Column("breaker_open", Boolean, nullable=False),
    Column("last_error", Text),
)


# -- permits: requests in flight to an ERP that limits them account-wide ---------------------

# One row per permit taken; `slot` below the configured limit, so the primary key alone keeps
# the holders at most that many. A holder that dies leaves its row until `held_until`, which
# outlasts the request it covered (erp_sync.netsuite).
erp_permit = Table(
    "erp_permit",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(128), nullable=False),
    Column("held_until", UTCDateTime(), nullable=False),
)
