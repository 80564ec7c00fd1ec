"""ledger movement: a BRIN index on event_id instead of a foreign key and a unique index

Both cost a lookup or an index entry per ledger row, on the table that takes one row per event
line; see the comment on `ledger_movement` in `inventory_sync.storage.tables`.

Revision ID: f845690e6c8e
Revises: 44cc10527e1e
Create Date: 2026-11-27 21:43:05.666881
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f845690e6c8e"
down_revision: str | None = "44cc10527e1e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_movement_event_id_inbound_event"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_ledger_movement_event_id_line_number_leg"), type_="unique"
        )
        batch_op.create_index(
            "ix_ledger_movement_event_id",
            ["event_id"],
            unique=False,
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_movement_event_id", postgresql_using="brin")
        batch_op.create_unique_constraint(
            batch_op.f("uq_ledger_movement_event_id_line_number_leg"),
            ["event_id", "line_number", "leg"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_movement_event_id_inbound_event"),
            "inbound_event",
            ["event_id"],
            ["id"],
        )
