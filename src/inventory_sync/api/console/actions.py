"""What the console changes: sign-in and sign-out, replay and retry, one or all matching.

Every state-changing request is a POST with the session's CSRF token (`rendering.Form`);
replay and retry need an admin session (`rendering.Admin`, else 403). A bulk action's filters
travel in its URL, parsed by the API's own filter parameters; the confirmation page before it
says how many match.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from inventory_sync.api.console import session
from inventory_sync.api.console.rendering import (
    Admin,
    ConsoleRoute,
    Form,
    Viewer,
    link,
    read_form,
    render,
)
from inventory_sync.api.deps import DatabaseDep, RulesDep, StoreDep
from inventory_sync.api.queryparams import EventFilterQuery, MessageFilterQuery
from inventory_sync.api.routes.events import NotQuarantined
from inventory_sync.api.routes.sync import AlreadyDelivered, MessageId
from inventory_sync.clock import utcnow
from inventory_sync.erp_sync import outbox
from inventory_sync.errors import NotFound
from inventory_sync.intake import service as intake
from inventory_sync.intake.classify import Status
from inventory_sync.ops import bulk
from inventory_sync.views import events as events_view
from inventory_sync.views import outbox as outbox_view

log = logging.getLogger("inventory_sync.console")
router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
EventId = Annotated[int, Path(ge=1, le=2**62)]


def _back(target: str | None, default: str) -> str:
    """A place inside the console to send the browser back to; anything else is `default`."""
    if target and target.startswith("/console") and not target.startswith("/console/sign-"):
        return target
    return default


async def _sign_in_page(request: Request, target: str, failed: bool = False) -> Response:
    form = await session.new_sign_in(request)
    page = render(
        request,
        "sign_in.html",
        None,
        401 if failed else 200,
        csrf=form.csrf,
        next=target,
        failed=failed,
    )
    form.set_cookie(request, page)
    return page


def _noticed(target: str, done: str) -> str:
    """`target` with `done=` set: the page it leads to says what was just done."""
    path, _, query = target.partition("?")
    return link(path, {**dict(parse_qsl(query)), "done": done})


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    target = _back(next, "/console")
    if await session.current(request) is not None:
        return RedirectResponse(target, status_code=303)
    return await _sign_in_page(request, target)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    fields = await read_form(request)
    target = _back(fields.get("next"), "/console")
    if not await session.sign_in_csrf_ok(request, fields.get("csrf", "")):
        # A stale form (or another site's): a fresh one, with nothing else said.
        return RedirectResponse(link("/console/sign-in", {"next": target}), status_code=303)
    answer = RedirectResponse(target, status_code=303)
    role = await session.open_session(request, answer, fields.get("token", "").strip())
    client = request.client.host if request.client else None
    if role is None:
        log.warning("console.sign_in_refused", extra={"client": client})
        return await _sign_in_page(request, target, failed=True)
    log.info("console.signed_in", extra={"role": role, "client": client})
    return answer


@router.post("/sign-out")
async def sign_out(request: Request, viewer: Viewer, _form: Form) -> Response:
    answer = RedirectResponse("/console/sign-in", status_code=303)
    await session.close_session(request, viewer, answer)
    return answer


@router.post("/events/{event_id}/replay")
async def replay(
    store: StoreDep, rules: RulesDep, _admin: Admin, form: Form, event_id: EventId
) -> Response:
    outcome = await intake.replay(store, event_id, rules)
    if outcome is None:
        raise NotFound(f"no event {event_id}")
    if outcome.status is Status.DISMISSED:
        raise NotQuarantined(f"event {event_id} is dismissed; a dismissed event is not replayed")
    back = _back(form.get("back"), f"/console/events/{event_id}")
    return RedirectResponse(_noticed(back, "replay"), status_code=303)


@router.post("/messages/{message_id}/retry")
def retry(db: DatabaseDep, _admin: Admin, form: Form, message_id: MessageId) -> Response:
    with db.transaction() as conn:
        before = outbox.retry(conn, message_id, utcnow())
    if before is None:
        raise NotFound(f"no sync message {message_id}")
    if before == outbox.DELIVERED:
        raise AlreadyDelivered(f"sync message {message_id} is already delivered")
    return RedirectResponse(_noticed(_back(form.get("back"), "/console/undelivered"), "retry"), 303)


@router.get("/undelivered/retry")
def confirm_retry(
    request: Request, db: DatabaseDep, admin: Admin, matching: MessageFilterQuery
) -> HTMLResponse:
    with db.snapshot() as conn:
        count = outbox_view.count_messages(conn, replace(matching, status=outbox.DEAD))
    return render(
        request,
        "confirm.html",
        admin,
        count=count,
        what="dead message",
        verb="Retry",
        most=bulk.MAX_RETRY,
        back="/console/undelivered",
    )


@router.post("/undelivered/retry")
def retry_matching(
    request: Request, db: DatabaseDep, admin: Admin, _form: Form, matching: MessageFilterQuery
) -> HTMLResponse:
    done = bulk.retry_matching(db, matching, bulk.MAX_RETRY, utcnow())
    return render(
        request,
        "result.html",
        admin,
        title="Retry",
        counts={"retried": done.retried, "failed": done.failed, "remaining": done.remaining},
        back="/console/undelivered",
        go_on=None,
    )


@router.get("/quarantine/replay")
def confirm_replay(
    request: Request,
    db: DatabaseDep,
    admin: Admin,
    matching: EventFilterQuery,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    where = replace(matching, status=Status.QUARANTINED.value)
    with db.snapshot() as conn:
        count = events_view.count_matching(conn, where, after)
    return render(
        request,
        "confirm.html",
        admin,
        count=count,
        what="quarantined event",
        verb="Replay",
        most=bulk.MAX_REPLAY,
        back="/console/quarantine",
    )


@router.post("/quarantine/replay")
async def replay_matching(
    request: Request,
    store: StoreDep,
    rules: RulesDep,
    admin: Admin,
    _form: Form,
    matching: EventFilterQuery,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    done = await bulk.replay_matching(store, rules, matching, bulk.MAX_REPLAY, after)
    go_on = None
    if done.remaining and done.last_id is not None:
        query = {k: v for k, v in request.query_params.items() if k != "after"}
        go_on = link("/console/quarantine/replay", {**query, "after": done.last_id})
    return render(
        request,
        "result.html",
        admin,
        title="Replay",
        counts={"replayed": done.replayed, "failed": done.failed, "remaining": done.remaining},
        outcomes=done.outcomes,
        back="/console/quarantine",
        go_on=go_on,
    )
