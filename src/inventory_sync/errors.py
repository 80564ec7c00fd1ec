"""The service's own exceptions. Drivers' errors are mapped to these where the driver is used
(`storage/`); everything above sees only these.

    Exception
    ├── ServiceError          an expected failure with an HTTP status; never a 500
    │   ├── NotFound          404
    │   └── BadCursor         400, a cursor this service did not issue
    ├── DatabaseUnavailable   try again later: unreachable, locked, timed out
    │   ├── SchemaBehind      the schema is missing or older than the code: an admin migrates
    │   └── DatabaseRefusesUs wrong credentials, no such database: an admin fixes the URL
    └── InputRefused          the database refuses these values (too long for an index entry,
                              out of range): retrying the same input fails the same way
"""

from __future__ import annotations


class ServiceError(Exception):
    """An expected failure with an HTTP status; rendered as a problem document by the API."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class BadCursor(ServiceError):
    status_code = 400
    code = "bad_cursor"


class DatabaseUnavailable(Exception):
    """The database cannot be reached, is locked or has no schema yet; retry later."""


class SchemaBehind(DatabaseUnavailable):
    """The database answers, but its schema is missing or older than this version. Requests
    are still refused as unavailable (retried), since a migration makes them work."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the database schema is behind this version ({reason}); "
            "run `inventory-sync db upgrade`"
        )


class DatabaseRefusesUs(DatabaseUnavailable):
    """The database server refuses the configured connection: wrong user or password, no
    such database. Retrying will not help until `INVSYNC_DATABASE_URL` or the server is fixed."""


class InputRefused(Exception):
    """The database refused the values themselves; the message is the database's reason,
    followed by its error's name in parentheses."""
