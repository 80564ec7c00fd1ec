"""ledger movement ids are the movement's place (event, line, leg); bodies and documents lz4

A movement's id becomes `event_id * 2**21 + 2 * line_number + leg`, so an event's movements are
one range of the primary key: the BRIN index on `event_id` and the id sequence go. See the
comment on `ledger_movement` in `inventory_sync.storage.tables`. Existing rows are renumbered
(two passes over the table, which hold intake while they run: on a large ledger, run it in a
quiet hour); ledger cursors issued before the upgrade are no longer valid.

On PostgreSQL 14 and later built with lz4, new raw bodies and ERP documents are compressed with
lz4 instead of pglz, at a fraction of the CPU; values already stored keep their compression.

Revision ID: b3f1c9d2a7e4
Revises: 4dd283ddba95
Create Date: 2026-12-07 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3f1c9d2a7e4"
down_revision: str | None = "4dd283ddba95"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here as the upgrade defines it (`ledger.effects.movement_id`).
SPAN = 2**21
COMPRESSED = (("inbound_event", "raw_body"), ("outbox_message", "document"))


def _lz4_available() -> bool:
    found = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            )
        )
        .scalar()
    )
    return bool(found)


def _compression(method: str) -> None:
    for table, column in COMPRESSED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    # Negated first: a new id may equal an old one not yet renumbered.
    op.execute("UPDATE ledger_movement SET id = -id")
    op.execute(f"UPDATE ledger_movement SET id = event_id * {SPAN} + 2 * line_number + leg")
    op.drop_index("ix_ledger_movement_event_id", table_name="ledger_movement")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_movement ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE IF EXISTS ledger_movement_id_seq")
        if _lz4_available():
            _compression("lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _compression("pglz")
        op.execute("CREATE SEQUENCE ledger_movement_id_seq OWNED BY ledger_movement.id")
        op.execute(
            "SELECT setval('ledger_movement_id_seq', "
            "(SELECT COALESCE(max(id), 0) + 1 FROM ledger_movement), false)"
        )
        op.execute(
            "ALTER TABLE ledger_movement ALTER COLUMN id "
            "SET DEFAULT nextval('ledger_movement_id_seq')"
        )
    op.create_index(
        "ix_ledger_movement_event_id",
        "ledger_movement",
        ["event_id"],
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )
