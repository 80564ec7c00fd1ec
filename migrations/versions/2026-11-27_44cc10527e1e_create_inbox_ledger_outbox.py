"""create inbox ledger outbox

Revision ID: 44cc10527e1e
Revises:
Create Date: 2026-11-27 17:20:59.774534
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "44cc10527e1e"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "generated_credential",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_generated_credential")),
    )
    op.create_table(
        "inbound_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("slot", sa.String(length=80), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("payload_id", sa.Text(), nullable=True),
        sa.Column("chunk_number", sa.Integer(), nullable=True),
        sa.Column("total_chunks", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("location_id", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("asn_id", sa.Text(), nullable=True),
        sa.Column("shipment_ref", sa.Text(), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_event")),
        sa.UniqueConstraint("slot", name=op.f("uq_inbound_event_slot")),
    )
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_event_asn_id"), ["asn_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbound_event_location_id"), ["location_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbound_event_name_id"), ["name", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbound_event_shipment_ref"), ["shipment_ref"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_event_status_id"), ["status", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_event_tenant_payload_id"), ["tenant", "payload_id"], unique=False
        )

    op.create_table(
        "count_observation",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("count_id", sa.Text(), nullable=False),
        sa.Column("chunk_number", sa.Integer(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("stock_location", sa.Text(), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("counted", sa.BigInteger(), nullable=False),
        sa.Column("stock_on_hand", sa.BigInteger(), nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["inbound_event.id"],
            name=op.f("fk_count_observation_event_id_inbound_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_observation")),
        sa.UniqueConstraint(
            "event_id", "line_number", name=op.f("uq_count_observation_event_id_line_number")
        ),
    )
    with op.batch_alter_table("count_observation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_count_observation_position",
            ["tenant", "location_id", "stock_location", "product_id", "counted_at"],
            unique=False,
        )

    op.create_table(
        "ledger_movement",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("stock_location", sa.Text(), nullable=False),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_name", sa.Text(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("leg", sa.SmallInteger(), nullable=False),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["inbound_event.id"],
            name=op.f("fk_ledger_movement_event_id_inbound_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_movement")),
        sa.UniqueConstraint(
            "event_id",
            "line_number",
            "leg",
            name=op.f("uq_ledger_movement_event_id_line_number_leg"),
        ),
    )
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_movement_position",
            ["tenant", "location_id", "stock_location", "product_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_movement_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "outbox_message",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["inbound_event.id"],
            name=op.f("fk_outbox_message_event_id_inbound_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_message_event_id")),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_message_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_outbox_message_type"), ["type"], unique=False)

    op.create_table(
        "shipment_line",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("asn_id", sa.Text(), nullable=False),
        sa.Column("chunk_number", sa.Integer(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("origin_location_id", sa.Text(), nullable=False),
        sa.Column("destination_location_id", sa.Text(), nullable=True),
        sa.Column("transfer_order_ref", sa.Text(), nullable=True),
        sa.Column("shipment_ref", sa.Text(), nullable=True),
        sa.Column("product_id", sa.Text(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["inbound_event.id"], name=op.f("fk_shipment_line_event_id_inbound_event")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_line")),
        sa.UniqueConstraint(
            "event_id", "line_number", name=op.f("uq_shipment_line_event_id_line_number")
        ),
    )
    with op.batch_alter_table("shipment_line", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shipment_line_tenant_asn_id"), ["tenant", "asn_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_shipment_line_tenant_shipment_ref"),
            ["tenant", "shipment_ref"],
            unique=False,
        )

    op.create_table(
        "sync_attempt",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox_message.id"],
            name=op.f("fk_sync_attempt_message_id_outbox_message"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_attempt")),
    )
    with op.batch_alter_table("sync_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_attempt_message_id_id"), ["message_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_attempt_message_id_id"))

    op.drop_table("sync_attempt")
    with op.batch_alter_table("shipment_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipment_line_tenant_shipment_ref"))
        batch_op.drop_index(batch_op.f("ix_shipment_line_tenant_asn_id"))

    op.drop_table("shipment_line")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_type"))
        batch_op.drop_index(batch_op.f("ix_outbox_message_status_next_attempt_at"))

    op.drop_table("outbox_message")
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_movement_product_id"))
        batch_op.drop_index("ix_ledger_movement_position")

    op.drop_table("ledger_movement")
    with op.batch_alter_table("count_observation", schema=None) as batch_op:
        batch_op.drop_index("ix_count_observation_position")

    op.drop_table("count_observation")
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_event_tenant_payload_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_event_status_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_event_shipment_ref"))
        batch_op.drop_index(batch_op.f("ix_inbound_event_name_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_event_location_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_event_asn_id"))

    op.drop_table("inbound_event")
    op.drop_table("generated_credential")
