"""inbox: partial indexes on asn_id and shipment_ref; no foreign keys to the inbox from the rows
written with an event (outbox message, count observations, shipment lines)

Every event paid two index entries for columns only ASN receipts fill, and a key check (a lookup
and a lock on the event's row) per written row; see the comment on `ledger_movement` in
`inventory_sync.storage.tables`.

Revision ID: a7d9ef194d49
Revises: f845690e6c8e
Create Date: 2026-11-27 23:26:38.209195
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d9ef194d49"
down_revision: str | None = "f845690e6c8e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = ("asn_id", "shipment_ref")
WRITTEN_WITH_AN_EVENT = ("outbox_message", "count_observation", "shipment_line")


def upgrade() -> None:
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        for column in PARTIAL:
            batch_op.drop_index(batch_op.f(f"ix_inbound_event_{column}"))
            where = sa.text(f"{column} IS NOT NULL")
            batch_op.create_index(
                batch_op.f(f"ix_inbound_event_{column}"),
                [column],
                unique=False,
                postgresql_where=where,
                sqlite_where=where,
            )
    for table in WRITTEN_WITH_AN_EVENT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_event_id_inbound_event"), type_="foreignkey"
            )


def downgrade() -> None:
    for table in WRITTEN_WITH_AN_EVENT:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_event_id_inbound_event"),
                "inbound_event",
                ["event_id"],
                ["id"],
            )
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        for column in PARTIAL:
            batch_op.drop_index(batch_op.f(f"ix_inbound_event_{column}"))
            batch_op.create_index(batch_op.f(f"ix_inbound_event_{column}"), [column], unique=False)
