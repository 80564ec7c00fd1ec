"""How console pages are rendered and how their routes fail: HTML, never problem+json.

Templates live in the package (`templates/`), autoescaped. Every page carries a strict
Content-Security-Policy: scripts, styles and images only from the console's own static files,
forms only to the console, no framing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape
from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse, RedirectResponse, Response

from inventory_sync.api.auth import Forbidden
from inventory_sync.api.console import session
from inventory_sync.clock import iso
from inventory_sync.errors import DatabaseUnavailable, ServiceError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

templates = Environment(
    loader=PackageLoader("inventory_sync.api.console", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: str | datetime | None) -> Markup:
    """A time in UTC, its local time on hover (`console.js` fills the title in)."""
    if value is None:
        return Markup("&ndash;")
    text = iso(value) if isinstance(value, datetime) else value
    shown = text.replace("T", " ")[:19] + "Z" if text else ""
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(escape(text), shown)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none pending"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


templates.filters["when"] = _when
templates.filters["age"] = _age


def link(path: str, query: Mapping[str, Any]) -> str:
    """`path` with the query's non-empty values."""
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def render(
    request: Request,
    template: str,
    viewer: session.Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = templates.get_template(template).render(
        viewer=viewer,
        path=request.url.path,
        query=request.query_params,
        link=link,
        status=status_code,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": CSP})


class SignInNeeded(Exception):
    """No valid session: the page sends the browser to the sign-in form."""


class ConsoleRoute(APIRoute):
    """A console route: empty form fields count as absent (an empty filter box filters
    nothing), and errors are pages: no session goes to sign-in, a service error or an invalid
    parameter is an HTML page with its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            # Before anything reads (and caches) the request's query parameters.
            given = QueryParams(request.scope["query_string"])
            kept = [(k, v) for k, v in given.multi_items() if v != ""]
            request.scope["query_string"] = urlencode(kept).encode()
            try:
                return await handler(request)
            except SignInNeeded:
                target = link("/console/sign-in", {"next": _next(request)})
                return RedirectResponse(target, status_code=303)
            except DatabaseUnavailable:
                raise  # the app's answer: 503 with Retry-After
            except ServiceError as error:
                viewer = await session.current(request)
                detail = str(error)
                return render(request, "error.html", viewer, error.status_code, detail=detail)
            except RequestValidationError as error:
                viewer = await session.current(request)
                detail = "; ".join(_problem(e) for e in error.errors())
                return render(request, "error.html", viewer, 422, detail=detail)

        return console_handler


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())[1:])
    return f"{where}: {error.get('msg', 'invalid')}"


def _next(request: Request) -> str:
    """Where to come back to after signing in: this page, if it is one to come back to."""
    if request.method != "GET":
        return "/console"
    return link(request.url.path, dict(request.query_params))


async def viewer(request: Request) -> session.Session:
    found = await session.current(request)
    if found is None:
        raise SignInNeeded()
    return found


def admin(found: Annotated[session.Session, Depends(viewer)]) -> session.Session:
    if not found.admin:
        raise Forbidden("this needs an admin token; you are signed in with an ops token")
    return found


Viewer = Annotated[session.Session, Depends(viewer)]
Admin = Annotated[session.Session, Depends(admin)]


MAX_FORM_BYTES = 64 * 1024


class BadForm(ServiceError):
    status_code = 400
    code = "bad_form"


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body, bounded; the last value of a repeated field wins."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadForm("form too large")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=100))
    except (UnicodeDecodeError, ValueError):
        raise BadForm("not a form this console sent") from None


async def checked_form(request: Request, found: Viewer) -> dict[str, str]:
    """The form of a state-changing request, refused (403) without the session's CSRF token."""
    fields = await read_form(request)
    if not session.same(fields.pop("csrf", ""), found.csrf):
        raise Forbidden("the form is stale or was not sent by this console: reload the page")
    return fields


Form = Annotated[dict[str, str], Depends(checked_form)]
