"""`inventory-sync status` and `erp-reconcile`: what ops check first, as tables in a terminal."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from inventory_sync.cli import output
from inventory_sync.cli.common import settings_or_exit
from inventory_sync.erp_sync import erp_stock
from inventory_sync.errors import ServiceError
from inventory_sync.storage.store import open_database
from inventory_sync.views import ledger as ledger_view
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


def erp_reconcile(
    location_id: Annotated[str | None, typer.Option(help="Only this location.")] = None,
    product_id: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    stock_location: Annotated[str | None, typer.Option(help="Only this stock location.")] = None,
    json_: output.JsonOption = False,
) -> None:
    """Compare the ERP's stock (INVSYNC_ERP_ADAPTER=tryton) with ours and list the differences.

    Exits 0 when they agree, 1 when some position differs, 2 when they cannot be compared."""
    settings = settings_or_exit()
    where = ledger_view.StockFilter(None, location_id, product_id, stock_location)
    with open_database(settings.database_url, pool_size=1) as db:
        with db.snapshot() as conn:
            positions = ledger_view.all_stock_positions(conn, where)
    try:
        result = asyncio.run(erp_stock.compare(settings, positions))
    except ServiceError as error:
        typer.echo(f"cannot compare: {error.detail}", err=True)
        raise typer.Exit(2) from None
    items = result["items"]
    if json_:
        output.emit_json(result)
        raise typer.Exit(1 if items else 0)
    if not items:
        typer.echo(f"{result['compared']} positions compared: the ERP agrees with every one")
        return
    table = Table(title=f"{len(items)} of {result['compared']} positions differ in the ERP")
    for column in ("location", "stock location", "product", "ours", "ERP", "difference"):
        table.add_column(column, justify="right" if column in ("ours", "ERP") else "left")
    for item in items:
        table.add_row(
            item["location_id"],
            item["stock_location"],
            item["product_id"],
            str(item["on_hand"]),
            "-" if item["erp_quantity"] is None else str(item["erp_quantity"]),
            item["reason"] or f"{item['difference']:+d}",
        )
    output.show(table)
    raise typer.Exit(1)
