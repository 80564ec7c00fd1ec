"""`inventory-sync purge`: retention run by hand or by a scheduler (storage.retention)."""

from __future__ import annotations

from typing import Annotated

import typer

from inventory_sync.cli import output
from inventory_sync.cli.common import settings_or_exit
from inventory_sync.clock import utcnow
from inventory_sync.storage import retention
from inventory_sync.storage.store import open_database


def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be purged; change nothing.")
    ] = False,
    batch_size: Annotated[
        # PostgreSQL binds at most 65,535 parameters in one statement.
        int, typer.Option(min=1, max=65_000, help="Rows per transaction.")
    ] = retention.BATCH,
    json_: output.JsonOption = False,
) -> None:
    """Delete delivered ERP messages older than INVSYNC_RETAIN_DELIVERED_DAYS (with their
    attempts) and empty the raw bodies of accepted, ignored and dismissed events older than
    INVSYNC_RETAIN_BODIES_DAYS, in short transactions.

    Never touches the ledger, pending or dead messages, or quarantined events' bodies.
    """
    settings = settings_or_exit()
    policy = retention.Policy.from_settings(settings)
    with open_database(settings.database_url, pool_size=1) as db:
        if dry_run:
            with db.snapshot() as conn:
                purged = retention.planned(conn, policy, utcnow())
        else:
            purged = retention.purge(db, policy, utcnow(), batch_size)
    figures = purged.as_dict()
    if json_:
        output.emit_json({"dry_run": dry_run, **figures})
        return
    title = "would purge (dry run)" if dry_run else "purged"
    output.show(
        output.fields(
            {
                f"delivered ERP messages, older than {policy.delivered_days} days": figures[
                    "messages"
                ],
                "  their delivery attempts": figures["attempts"],
                f"raw bodies, older than {policy.bodies_days} days": figures["bodies"],
                "  bytes": figures["body_bytes"],
            },
            title=title,
        )
    )
