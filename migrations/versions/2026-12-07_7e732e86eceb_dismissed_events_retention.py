"""dismissed events (who, when, why); retention: purged bodies, the tally of purged attempts

A quarantined event an admin dismisses gets the status `dismissed` and keeps who dismissed it,
when and why. Retention empties old raw bodies (`body_purged_at` says when) and deletes
delivered ERP messages with their attempts, adding those to `purged_attempts` so that the
delivery totals never go down.

Revision ID: 7e732e86eceb
Revises: 5c2e8f31a9d0
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7e732e86eceb"
down_revision: str | None = "5c2e8f31a9d0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("dismissed_at", sa.DateTime(timezone=True)),
    ("dismissed_by", sa.Text()),
    ("dismiss_reason", sa.Text()),
    ("body_purged_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("inbound_event", sa.Column(name, type_, nullable=True))
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "purged_attempts",
        sa.Column("id", id_type, autoincrement=True, nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purged_attempts")),
    )


def downgrade() -> None:
    op.drop_table("purged_attempts")
    # Dismissed events go back to quarantined, the status they were dismissed from.
    op.execute("UPDATE inbound_event SET status = 'quarantined' WHERE status = 'dismissed'")
    with op.batch_alter_table("inbound_event") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
