"""`format=csv` on the listings: every matching row, streamed, whatever `limit` says.

A listing gives its rows as the JSON items; nested values are flattened by the route (one CSV
row per line of a transfer, say) or written as JSON text in one cell.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Connection

from inventory_sync.errors import ServiceError
from inventory_sync.storage.database import Database

Format = Annotated[
    Literal["json", "csv"],
    Query(description="`csv` streams every matching row as CSV, ignoring `limit` and `cursor`."),
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
# Rows are read, and written out, this many at a time.
BATCH = 500

# A spreadsheet reads a cell that starts with one of these as a formula (OWASP's CSV
# injection); ids come from NewStore's users and are written as text, never run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class NoCsv(ServiceError):
    status_code = 400
    code = "csv_unavailable"


def cell(value: Any) -> Any:
    """A JSON value as one CSV cell: text that looks like a formula quoted, nested values as
    JSON text, booleans as JSON writes them."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return cell(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return value


def lines(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The header, then the rows, in chunks of `BATCH` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for n, row in enumerate(rows, start=1):
        writer.writerow([cell(row.get(c)) for c in columns])
        if n % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def response(
    name: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> StreamingResponse:
    return StreamingResponse(
        lines(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


Fetch = Callable[[Connection, int, Any], list[dict[str, Any]]]


def every_row(
    db: Database, fetch: Fetch, position_of: Callable[[dict[str, Any]], Any]
) -> Iterator[dict[str, Any]]:
    """Every row of a keyset-paginated listing, read a page at a time in one snapshot, so the
    export is consistent and memory stays flat at any size. `fetch(conn, limit, after)` is the
    listing's query and `position_of` gives a row's place, as its cursor does."""
    after = None
    with db.snapshot() as conn:
        while True:
            rows = fetch(conn, BATCH, after)
            yield from rows
            if len(rows) < BATCH:
                return
            after = position_of(rows[-1])


def per_line(items: Iterable[dict[str, Any]], nested: str) -> Iterator[dict[str, Any]]:
    """One row per element of each item's `nested` list, with the item's own fields repeated
    and an element's fields taking the place of the item's of the same name (an item without
    elements is one row)."""
    for item in items:
        own = {k: v for k, v in item.items() if k != nested}
        for element in item.get(nested) or [{}]:
            yield {**own, **element}


def refuse(format: str | None, what: str) -> None:
    """400 for `format=csv` on an answer that is one object, not a listing."""
    if format not in (None, "json"):
        raise NoCsv(f"format={format}: {what} is one object, not a listing; it has no CSV form")
