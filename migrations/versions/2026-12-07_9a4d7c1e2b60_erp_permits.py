"""erp_permit: requests in flight to an ERP that limits them across all workers

Revision ID: 9a4d7c1e2b60
Revises: d41c7a9e2b85
Create Date: 2026-12-07 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a4d7c1e2b60"
down_revision: str | None = "d41c7a9e2b85"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erp_permit",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_erp_permit")),
    )


def downgrade() -> None:
    op.drop_table("erp_permit")
