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
    section(
        "unmatched receipts",
        {
            "receipt events": overview["unmatched_receipts"],
            "first ASN ids": ", ".join(overview["unmatched_receipt_asn_ids"]) or "-",
        },
    )
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


def render_completeness(stores: list[dict[str, Any]]) -> Table:
    """Per store, the signs that events are being lost (docs/operations.md)."""
    table = Table(
        title="completeness per store, last 30 days", show_header=True, header_style="bold"
    )
    for name in ("store", "last count"):
        table.add_column(name)
    for name in ("counted lines", "with drift", "drift units", "stale chunk sets", "quarantined"):
        table.add_column(name, justify="right")
    table.add_column("completeness", justify="right")
    several_tenants = len({item["tenant"] for item in stores}) > 1
    for item in stores:
        score = item["score"]
        table.add_row(
            f"{item['tenant']}/{item['location_id']}" if several_tenants else item["location_id"],
            (item["last_counted_at"] or "never")[:16].replace("T", " "),
            str(item["counted_lines"]),
            str(item["lines_with_drift"]),
            str(item["drift_units"]),
            str(item["stale_incomplete_chunk_sets"]),
            str(item["quarantined_events"]),
            "-" if score is None else f"{score:.0%}",
        )
    if not stores:
        table.add_row("(no store counted or with events lost)", *[""] * 7)
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
    output.show(render(overview), render_completeness(overview["completeness"]))
