"""One output style for every command that prints data: rich tables for people, `--json` for
programs. Tables carry no colour codes when the output is no terminal; JSON is the same data as
the REST API answers, on stdout, nothing else with it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (the REST API's fields) instead of a table.")
]
# Piped without --json, a table is laid out this wide rather than rich's 80 columns, so that
# ids (what other commands take) are not folded.
PIPE_WIDTH = 200
# How much of a long text a table cell shows; --json has it all.
CELL_CHARS = 120


def console() -> Console:
    found = Console()
    return found if found.is_terminal else Console(width=PIPE_WIDTH)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def text(value: Any) -> str:
    """A value as a table cell: `-` for nothing, one line, at most `CELL_CHARS` long."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    line = " ".join(str(value).split())
    return line if len(line) <= CELL_CHARS else line[: CELL_CHARS - 1] + "…"


def table(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, title: str | None = None
) -> Table:
    """Rows of dicts as a table of the fields `columns`, headed by their names as --json has
    them. The first column, an id other commands take, is never wrapped."""
    found = Table(title=title, header_style="bold")
    for n, name in enumerate(columns):
        found.add_column(name, no_wrap=n == 0)
    for row in rows:
        found.add_row(*(text(row.get(name)) for name in columns))
    return found


def fields(values: Mapping[str, Any], *, title: str | None = None) -> Table:
    """One record as a two-column table of field and value."""
    found = Table(title=title, show_header=False)
    found.add_column("field", style="bold", no_wrap=True)
    found.add_column("value")
    for name, value in values.items():
        found.add_row(name, text(value))
    return found


def listing(columns: Sequence[str], rows: list[dict[str, Any]], as_json: bool) -> None:
    """A listing: every field of every row as JSON, or the `columns` as a table."""
    if as_json:
        emit_json(rows)
    else:
        show(table(columns, rows))


def show(*tables: Table) -> None:
    out = console()
    for each in tables:
        out.print(each)
