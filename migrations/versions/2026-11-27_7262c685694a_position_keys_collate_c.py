"""position keys: the "C" collation for tenant, location_id, stock_location and product_id of
ledger movements and count observations (PostgreSQL; SQLite compares bytes already)

Their indexes take an entry per ledger row; with "C" each comparison is a memcmp instead of a
locale-aware strcoll. See `PositionKey` in `inventory_sync.storage.tables`. The tables are not
rewritten, but every index on these columns is rebuilt under lock: on a large ledger, run it
in a quiet hour.

Revision ID: 7262c685694a
Revises: a7d9ef194d49
Create Date: 2026-11-28 00:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7262c685694a"
down_revision: str | None = "a7d9ef194d49"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("ledger_movement", "count_observation")
COLUMNS = ("tenant", "location_id", "stock_location", "product_id")


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        changes = ", ".join(
            f'ALTER COLUMN {column} TYPE text COLLATE "{collation}"' for column in COLUMNS
        )
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
