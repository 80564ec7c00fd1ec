"""position indexes lead with product_id; the ledger's separate product_id index goes

One B-tree per table now serves both a position's rows and a product's history. See the
comment on `ledger_movement` in `inventory_sync.storage.tables`. The indexes are rebuilt under
lock, which holds intake for as long as the build takes: on a large ledger, run it in a quiet
hour.

Revision ID: e7a4a9230f97
Revises: 7262c685694a
Create Date: 2026-11-28 10:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e7a4a9230f97"
down_revision: str | None = "7262c685694a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSITIONS = {"ledger_movement": "occurred_at", "count_observation": "counted_at"}
PRODUCT_FIRST = ("product_id", "location_id", "stock_location", "tenant")
TENANT_FIRST = ("tenant", "location_id", "stock_location", "product_id")


def _position_indexes(key: Sequence[str]) -> None:
    for table, moment in POSITIONS.items():
        name = f"ix_{table}_position"
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [*key, moment])


def upgrade() -> None:
    op.drop_index("ix_ledger_movement_product_id", table_name="ledger_movement")
    _position_indexes(PRODUCT_FIRST)


def downgrade() -> None:
    _position_indexes(TENANT_FIRST)
    op.create_index("ix_ledger_movement_product_id", "ledger_movement", ["product_id"])
