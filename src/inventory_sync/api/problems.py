"""Errors of the API, all rendered as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from inventory_sync.errors import DatabaseUnavailable, InputRefused, SchemaBehind, ServiceError

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# Where each problem type is explained: `GET /problems/<code>` on the service itself, and
# docs/problems.md. A relative reference, resolved against the answer's own URL (RFC 9457
# 3.1.1): an absolute one would have to trust the request's Host header.
TYPES_PATH = "/problems"
REF_TEMPLATE = "#/components/schemas/{model}"


@dataclass(frozen=True)
class ProblemType:
    code: str
    status: int
    title: str
    explanation: str

    @property
    def uri(self) -> str:
        return f"{TYPES_PATH}/{self.code}"


PROBLEM_TYPES = {
    problem_type.code: problem_type
    for problem_type in (
        ProblemType(
            "bad_request",
            400,
            "Bad request",
            "The request cannot be answered as it is; `detail` says why.",
        ),
        ProblemType(
            "bad_cursor",
            400,
            "Bad cursor",
            "`cursor` is not a `next_cursor` this service issued. Start again from the first "
            "page (no `cursor`) and follow `next_cursor` unchanged.",
        ),
        ProblemType(
            "bad_form",
            400,
            "Bad form",
            "A form posted to the console that is too large or is not one the console sent "
            "(`/console`).",
        ),
        ProblemType(
            "csv_unavailable",
            400,
            "No CSV form",
            "`format=csv` on an answer that is one object (an event, a message, the summary), "
            "not a listing. Ask for JSON, or for the listing in CSV.",
        ),
        ProblemType(
            "input_refused",
            400,
            "Input refused by the database",
            "The database refuses a value of the request (too long to index, out of range). "
            "The same request fails the same way: change it.",
        ),
        ProblemType(
            "unauthorized",
            401,
            "Unauthorized",
            "No bearer token, or not one the service accepts. The webhook takes a key of "
            "`INVSYNC_WEBHOOK_KEYS`; the ops API a token of `INVSYNC_OPS_TOKENS` or "
            "`INVSYNC_ADMIN_TOKENS`; `/metrics` `INVSYNC_METRICS_TOKEN` when it is set.",
        ),
        ProblemType(
            "forbidden",
            403,
            "Needs an admin token",
            "The operation changes state (replay, dismiss, retry): it takes a token of "
            "`INVSYNC_ADMIN_TOKENS`, not an ops token.",
        ),
        ProblemType(
            "not_found",
            404,
            "Not found",
            "No event or sync message has this id, or (`/v1/events/{id}/raw`) the body of "
            "an ignored event was not kept, or retention has emptied it.",
        ),
        ProblemType(
            "already_delivered",
            409,
            "Already delivered",
            "The ERP has acknowledged this sync message; there is nothing to retry.",
        ),
        ProblemType(
            "not_quarantined",
            409,
            "Not quarantined",
            "Only a quarantined event is dismissed, and a dismissed event is not replayed: it "
            "was set aside on purpose.",
        ),
        ProblemType(
            "erp_stock_unreadable",
            409,
            "ERP stock unreadable",
            "The configured ERP adapter cannot read the ERP's stock (only `tryton` can), or "
            "`INVSYNC_ERP_URL` is not set.",
        ),
        ProblemType(
            "too_large",
            413,
            "Body too large",
            "The webhook body exceeds `INVSYNC_MAX_BODY_BYTES`. Nothing was stored; the "
            "connection is closed.",
        ),
        ProblemType(
            "unsupported_media_type",
            415,
            "Not JSON",
            "The webhook takes `application/json` (or any `application/*+json`). Nothing was "
            "stored.",
        ),
        ProblemType(
            "invalid_request",
            422,
            "Invalid request",
            "A parameter is missing, of the wrong type or out of its range; `errors` lists "
            "each one with its location and message.",
        ),
        ProblemType(
            "invalid_parameter",
            422,
            "Invalid parameter",
            "A parameter is well-formed but its value cannot be used, such as a `since` or "
            "`until` that is not an ISO-8601 timestamp.",
        ),
        ProblemType(
            "database_unavailable",
            503,
            "Database unavailable",
            "The database cannot be reached, is busy, or refuses the service's connection. "
            "Retry after `Retry-After` seconds; NewStore redelivers webhooks on its own.",
        ),
        ProblemType(
            "erp_unavailable",
            503,
            "ERP unavailable",
            "The ERP did not answer while its stock was read. Retry after `Retry-After` seconds.",
        ),
        ProblemType(
            "schema_behind",
            503,
            "Database schema behind",
            "The database's schema is missing or older than this version: an operator runs "
            "`inventory-sync db upgrade`. Until then every request gets this answer.",
        ),
        ProblemType(
            "internal",
            500,
            "Internal error",
            "A defect in the service, not in the request. Whether the request took effect is "
            "not known: read the state back before sending it again. The log has the details "
            "under the answer's `X-Request-ID`.",
        ),
    )
}


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem document. A `code` of `PROBLEM_TYPES` gives its type; without one the type is
    `about:blank`, whose meaning is the HTTP status alone (an unknown path, a wrong method)."""
    known = PROBLEM_TYPES.get(code) if code else None
    body: dict[str, Any] = {
        "type": known.uri if known else "about:blank",
        "title": known.title if known else HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


class ProblemIssue(BaseModel):
    loc: list[str]
    msg: str


class Problem(BaseModel):
    """An error answer, RFC 9457."""

    type: str = Field(description="What kind of problem: `GET` it for an explanation.")
    title: str
    status: int
    detail: str = Field(description="This occurrence, in words.")
    errors: list[ProblemIssue] | None = Field(
        default=None, description="`invalid_request`: each invalid parameter."
    )


def responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for problems of these types, one per status, each naming its types."""
    by_status: dict[int, list[ProblemType]] = {}
    for code in codes:
        problem_type = PROBLEM_TYPES[code]
        by_status.setdefault(problem_type.status, []).append(problem_type)
    return {
        status: {
            "description": "; ".join(t.title for t in types) + ".",
            "content": {
                PROBLEM: {
                    "schema": {
                        "allOf": [
                            {"$ref": REF_TEMPLATE.format(model="Problem")},
                            {"properties": {"type": {"enum": [t.uri for t in types]}}},
                        ]
                    }
                }
            },
        }
        for status, types in sorted(by_status.items())
    }


def _derived(operation: dict[str, Any]) -> list[str]:
    """The problems an ops operation may answer by what it is: any database read, any token
    check, any parameter; the rest (404, 409) each route declares."""
    codes = ["database_unavailable", "schema_behind"]
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if schemes:
        codes.append("unauthorized")
    if schemes == {"AdminToken"}:
        codes.append("forbidden")
    names = {parameter["name"] for parameter in operation.get("parameters", [])}
    if names or "requestBody" in operation:
        codes.append("invalid_request")
    if "cursor" in names:
        codes.append("bad_cursor")
    if names & {"since", "until"}:
        codes.append("invalid_parameter")
    return codes


def _declared(responses_: dict[str, Any]) -> list[str]:
    """The problem codes already declared in an operation's responses."""
    codes = []
    for status, response in responses_.items():
        if status[0] not in "45":
            continue
        schema = response.get("content", {}).get(PROBLEM, {}).get("schema", {})
        for part in schema.get("allOf", []):
            for uri in part.get("properties", {}).get("type", {}).get("enum", []):
                codes.append(uri.rpartition("/")[2])
    return codes


def _document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API answers: every error of the ops API and of
    the webhook is `application/problem+json`, with the problem types each operation can give
    (derived from what the operation is, plus what its route declares)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            component_schemas(Problem)
        )
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                declared = operation.setdefault("responses", {})
                codes = _declared(declared)
                if path.startswith("/v1"):
                    codes += _derived(operation)
                if not codes:
                    continue
                for status in [s for s in declared if s[0] in "45"]:
                    del declared[status]
                declared.update({str(s): r for s, r in responses(*dict.fromkeys(codes)).items()})
        # FastAPI's own answer to an invalid request, which the problems replaced.
        if "HTTPValidationError" not in json.dumps(schema["paths"]):
            for name in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The JSON schemas of `models` and of every model they use, by name, for
    `components.schemas`."""
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=REF_TEMPLATE
    )
    found: dict[str, Any] = top.get("$defs", {})
    return found


def database_unavailable(error: DatabaseUnavailable | None = None) -> JSONResponse:
    """A database error that is not the request's fault (server gone, schema missing while an
    upgrade runs): a retryable 503, never a bare 500. A schema behind the code says so, since
    only an operator can end it."""
    if isinstance(error, SchemaBehind):
        detail, code = str(error), "schema_behind"
    else:
        detail, code = "the database is unavailable; retry later", "database_unavailable"
    return problem(503, detail, code=code, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _explain(code: str) -> PlainTextResponse:
    """The page a problem's `type` names."""
    known = PROBLEM_TYPES.get(code)
    if known is None:
        return PlainTextResponse("no such problem type\n", status_code=404)
    text = f"{known.title} (HTTP {known.status})\n\n{known.explanation}\n"
    return PlainTextResponse(text)


def register_error_handlers(app: FastAPI) -> None:
    _document_problems(app)
    app.add_api_route(TYPES_PATH + "/{code}", _explain, methods=["GET"], include_in_schema=False)

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

    @app.exception_handler(Exception)
    async def _defect(_request: Request, _error: Exception) -> JSONResponse:
        # Starlette logs the exception itself; the client gets a problem, never the text.
        return problem(500, "an unexpected error in the service", code="internal")

    @app.exception_handler(InputRefused)
    async def _refused(_request: Request, error: InputRefused) -> JSONResponse:
        return problem(
            400, f"the database refuses a value of this request: {error}", code="input_refused"
        )
