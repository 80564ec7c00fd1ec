"""`inventory-sync status`: what ops check first, as tables in a terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from inventory_sync.cli import output
from inventory_sync.cli.common import settings_or_exit
from inventory_sync.storage.store import open_database
from inventory_sync.views.reconciliation import summary


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def render(overview: dict[str, Any]) -> Table:
    """One table with a section per subject; zero rows are shown so absence is visible."""
    table = Table(title="inventory-sync status", show_header=True, header_style="bold")
    table.add_column("subject")
    table.add_column("what")
    table.add_column("count", justify="right")

    def section(subject: str, rows: dict[str, Any]) -> None:
        for n, (what, value) in enumerate(rows.items()):
            table.add_row(subject if n == 0 else "", what, str(value))
        table.add_section()

    section("events", overview["events"] or {"(none)": 0})
    section("ledger movements", overview["movements"] or {"(none)": 0})
    section("stock positions", {"positions": overview["stock_positions"]})
    section("transfers", overview["transfers"])
    section("unmatched receipts", {"receipt events": overview["unmatched_receipts"]})
    section("counts", {"lines with drift": overview["counts"]["drifted_lines"]})
    section("chunks", {"incomplete sets": overview["chunks"]["incomplete_sets"]})
    sync = overview["sync"]
    section(
        "ERP sync",
        {
            "pending": sync["pending"],
            "delivered": sync["delivered"],
            "dead": sync["dead"],
            "oldest pending": _age(sync["oldest_pending_age_seconds"]),
        },
    )
    section("ERP sync workers", overview["workers"] or {"(none heard of)": 0})
    return table


def status(json_: output.JsonOption = False) -> None:
    """Show events, ledger, stock positions, reconciliation and ERP sync at a glance."""
    settings = settings_or_exit()
    with open_database(settings.database_url, pool_size=1) as db:
        with db.snapshot() as conn:
            overview = summary.overview(conn)
    if json_:
        output.emit_json(overview)
        return
    output.show(render(overview))
