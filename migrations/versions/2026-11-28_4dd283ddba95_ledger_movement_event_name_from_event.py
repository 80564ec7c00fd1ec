"""ledger movement: the event name is read from the event, no longer stored on every row

See the comment on `ledger_movement` in `inventory_sync.storage.tables`. On PostgreSQL dropping
the column changes only the catalogue; the downgrade fills it again from `inbound_event`.

Revision ID: 4dd283ddba95
Revises: e7a4a9230f97
Create Date: 2026-11-28 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4dd283ddba95"
down_revision: str | None = "e7a4a9230f97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.drop_column("event_name")


def downgrade() -> None:
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_name", sa.Text(), nullable=True))
    op.execute(
        "UPDATE ledger_movement SET event_name = COALESCE("
        "(SELECT name FROM inbound_event WHERE inbound_event.id = ledger_movement.event_id), '')"
    )
    with op.batch_alter_table("ledger_movement", schema=None) as batch_op:
        batch_op.alter_column("event_name", existing_type=sa.Text(), nullable=False)
