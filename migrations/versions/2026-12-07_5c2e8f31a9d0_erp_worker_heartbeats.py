"""erp_worker: each ERP sync worker's heartbeat, state and breaker, for metrics and status

Revision ID: 5c2e8f31a9d0
Revises: b3f1c9d2a7e4
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c2e8f31a9d0"
down_revision: str | None = "b3f1c9d2a7e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erp_worker",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("breaker_open", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_erp_worker")),
    )


def downgrade() -> None:
    op.drop_table("erp_worker")
