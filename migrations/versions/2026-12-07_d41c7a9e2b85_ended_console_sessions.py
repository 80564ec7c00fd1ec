"""ended_console_session: console sessions signed out before they expire

Revision ID: d41c7a9e2b85
Revises: 7e732e86eceb
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d41c7a9e2b85"
down_revision: str | None = "7e732e86eceb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ended_console_session",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_ended_console_session")),
    )


def downgrade() -> None:
    op.drop_table("ended_console_session")
