"""Errors of the API, all rendered as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inventory_sync.errors import DatabaseUnavailable, InputRefused, SchemaBehind, ServiceError

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = "5"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"about:blank#{code}" if code else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}

_ERRORS = {
    "400": "Bad parameter or cursor.",
    "401": "Missing or wrong bearer token.",
    "422": "Invalid parameter.",
    "503": "Database unavailable; retry after `Retry-After` seconds.",
}


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API answers: every error of the ops API and of
    the webhook is `application/problem+json`, and every ops route may answer 400, 401, 422
    and 503 (403 where it changes state, 404 where it names a resource)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(("/v1", "/webhooks")):
                continue
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if path.startswith("/v1"):
                    wanted = dict(_ERRORS)
                    if method != "get":
                        wanted["403"] = "Needs an admin token."
                    if "{" in path:
                        wanted["404"] = "No such resource."
                    for status, description in wanted.items():
                        responses.setdefault(status, {"description": description})
                for status, response in responses.items():
                    if status[0] in "45":
                        response["content"] = {PROBLEM: {"schema": _PROBLEM_SCHEMA}}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def database_unavailable(error: DatabaseUnavailable | None = None) -> JSONResponse:
    """A database error that is not the request's fault (server gone, schema missing while an
    upgrade runs): a retryable 503, never a bare 500. A schema behind the code says so, since
    only an operator can end it."""
    if isinstance(error, SchemaBehind):
        detail, code = str(error), "schema_behind"
    else:
        detail, code = "the database is unavailable; retry later", "database_unavailable"
    return problem(503, detail, code=code, headers={"Retry-After": RETRY_AFTER_SECONDS})


def register_error_handlers(app: FastAPI) -> None:
    _document_problems(app)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        return problem(error.status_code, error.detail, code=error.code, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        return problem(error.status_code, str(error.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(i['loc'])}: {i['msg']}" for i in issues) or "invalid request"
        return problem(422, detail, code="invalid_request", extra={"errors": issues})

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(_request: Request, error: DatabaseUnavailable) -> JSONResponse:
        return database_unavailable(error)

    @app.exception_handler(InputRefused)
    async def _refused(_request: Request, error: InputRefused) -> JSONResponse:
        return problem(400, f"the database refuses a value of this request: {error}")
