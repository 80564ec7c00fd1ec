"""The console over HTTP through the real app, on both backends: sessions and their cookie,
CSRF, roles, what the pages show and that none of them shows a secret."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from inventory_sync.api.app import create_app
from inventory_sync.api.console import session
from inventory_sync.ops import bulk
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests import factories as f
from tests.console.conftest import csrf_of, sign_in
from tests.erp_sync.conftest import FakeErp, message
from tests.ops.test_bulk import kill
from tests.ops.test_replay import quarantine, rows

PAGES = [
    "/console",
    "/console/events",
    "/console/undelivered",
    "/console/quarantine",
    "/console/reconciliation",
    "/console/reconciliation?view=counts",
    "/console/reconciliation?view=chunks",
    "/console/stock?product_id=A",
]
SIGNING_KEY = "k" * 40


def _cookie(answer: object, name: str) -> SimpleCookie:
    headers = answer.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    for header in headers:
        if header.startswith(f"{name}="):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            return jar
    raise AssertionError(f"no {name} cookie in {headers}")


def _attributes(answer: object, name: str) -> set[str]:
    headers = answer.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    [header] = [h for h in headers if h.startswith(f"{name}=")]
    return {part.strip().lower() for part in header.split(";")[1:]}


@pytest.fixture
def console(settings: Settings) -> Iterator[TestClient]:
    keyed = settings.model_copy(update={"console_signing_key": SecretStr(SIGNING_KEY)})
    with TestClient(create_app(keyed)) as client:
        yield client


class TestSession:
    def test_every_page_needs_a_session(self, client: TestClient) -> None:
        for page in [*PAGES, "/console/events/1", "/console/stock.csv", "/console/ledger.csv"]:
            answer = client.get(page, follow_redirects=False)
            assert answer.status_code == 303, page
            assert answer.headers["location"].startswith("/console/sign-in?next=%2Fconsole")
        answer = client.post("/console/events/1/replay", data={}, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole"

    def test_cookie_flags(self, client: TestClient) -> None:
        form = client.get("/console/sign-in")
        assert {"httponly", "samesite=strict", "path=/console"} <= _attributes(
            form, session.SIGN_IN_COOKIE
        )
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": f.ADMIN_TOKEN},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        flags = _attributes(answer, session.COOKIE)
        assert {"httponly", "samesite=strict", "path=/console", "max-age=28800"} <= flags
        assert "secure" not in flags  # plain HTTP here; see the next test
        value = _cookie(answer, session.COOKIE)[session.COOKIE].value
        assert f.ADMIN_TOKEN not in value
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", value)

    def test_cookie_is_secure_over_https(self, settings: Settings) -> None:
        with TestClient(create_app(settings), base_url="https://console.test") as client:
            form = client.get("/console/sign-in")
            answer = client.post(
                "/console/sign-in",
                data={"csrf": csrf_of(form.text), "token": f.READ_TOKEN},
                follow_redirects=False,
            )
            assert "secure" in _attributes(answer, session.COOKIE)

    def test_wrong_token_and_stale_form(self, client: TestClient) -> None:
        form = client.get("/console/sign-in")
        wrong = client.post(
            "/console/sign-in", data={"csrf": csrf_of(form.text), "token": f.WEBHOOK_KEY}
        )
        assert wrong.status_code == 401
        assert "not an ops or admin token" in wrong.text
        assert session.COOKIE not in client.cookies
        stale = client.post(
            "/console/sign-in",
            data={"csrf": "forgéd", "token": f.ADMIN_TOKEN},
            follow_redirects=False,
        )
        assert stale.status_code == 303
        assert stale.headers["location"].startswith("/console/sign-in")
        assert session.COOKIE not in client.cookies
        client.cookies.clear()
        no_cookie = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "token": f.ADMIN_TOKEN},
            follow_redirects=False,
        )
        assert no_cookie.headers["location"].startswith("/console/sign-in")

    def test_forged_expired_and_revoked_sessions(
        self, console: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sign_in(console, f.ADMIN_TOKEN)
        value = console.cookies[session.COOKIE]
        body, signature = value.split(".")
        for forged in (
            f"{body}.{signature[:-2]}AA",
            f"{body}x.{signature}",
            "garbage",
            "",
        ):
            console.cookies.set(session.COOKIE, forged, path="/console")
            assert console.get("/console", follow_redirects=False).status_code == 303
        # Bytes no browser should send, as a server reads them (latin-1).
        raw = f"{session.COOKIE}={body}.{signature[:-1]}\xe9".encode("latin-1")
        console.cookies.clear()
        answer = console.get("/console", headers={"cookie": raw}, follow_redirects=False)
        assert answer.status_code == 303
        console.cookies.set(session.COOKIE, value, path="/console")
        assert console.get("/console").status_code == 200

        later = time.time() + 8 * 3600 + 1
        monkeypatch.setattr(session.time, "time", lambda: later)
        assert console.get("/console", follow_redirects=False).status_code == 303
        monkeypatch.undo()

        # The same signing key, but the admin token is no longer configured.
        revoked = settings.model_copy(
            update={
                "console_signing_key": SecretStr(SIGNING_KEY),
                "admin_tokens": [SecretStr("another-admin-token")],
            }
        )
        with TestClient(create_app(revoked)) as other:
            other.cookies.set(session.COOKIE, value, path="/console")
            assert other.get("/console", follow_redirects=False).status_code == 303

    def test_sign_out_ends_the_session_everywhere(self, console: TestClient) -> None:
        csrf = sign_in(console, f.READ_TOKEN)
        copied = console.cookies[session.COOKIE]
        refused = console.post("/console/sign-out", data={}, follow_redirects=False)
        assert refused.status_code == 403
        answer = console.post("/console/sign-out", data={"csrf": csrf}, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"
        assert "max-age=0" in _attributes(answer, session.COOKIE)
        assert console.get("/console", follow_redirects=False).status_code == 303
        # A copy of the cookie, kept from before, is refused too.
        console.cookies.set(session.COOKIE, copied, path="/console")
        assert console.get("/console", follow_redirects=False).status_code == 303
        # Signing in again opens a new session.
        sign_in(console, f.READ_TOKEN)
        assert console.get("/console").status_code == 200

    def test_generated_signing_key_is_shared_through_the_database(
        self, client: TestClient, settings: Settings
    ) -> None:
        sign_in(client, f.ADMIN_TOKEN)
        value = client.cookies[session.COOKIE]
        with TestClient(create_app(settings)) as another_process:
            another_process.cookies.set(session.COOKIE, value, path="/console")
            assert another_process.get("/console").status_code == 200


class TestCsrfAndRoles:
    def test_every_form_that_posts_carries_the_token(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        kill(client, settings, db, erp)
        csrf = sign_in(client, f.ADMIN_TOKEN)
        pages = [
            *PAGES,
            f"/console/events/{event_id}",
            "/console/undelivered/retry",
            "/console/quarantine/replay",
        ]
        posting = 0
        for page in pages:
            html = client.get(page).text
            for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, re.S):
                posting += 1
                assert f'name="csrf" value="{csrf}"' in form, (page, form)
        assert posting >= 8

    def test_a_post_without_the_token_changes_nothing(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        [dead, *_] = kill(client, settings, db, erp)
        sign_in(client, f.ADMIN_TOKEN)
        for data in ({}, {"csrf": "forged"}, {"csrf": ""}, {"csrf": "é"}):
            for url in (
                f"/console/events/{event_id}/replay",
                f"/console/messages/{dead}/retry",
                "/console/quarantine/replay",
                "/console/undelivered/retry",
            ):
                answer = client.post(url, data=data)
                assert answer.status_code == 403, (url, data)
                assert "text/html" in answer.headers["content-type"]
        assert rows(db, event_id) == (0, 0)
        assert message(client, dead)["status"] == "dead"

    def test_read_only_sees_no_buttons_and_gets_403(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        [event_id] = quarantine(settings, f.received(("A", 1)))
        [dead, *_] = kill(client, settings, db, erp)
        csrf = sign_in(client, f.READ_TOKEN)
        for page in [*PAGES, f"/console/events/{event_id}"]:
            html = client.get(page).text
            assert "read-only" in html
            assert re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html) == [
                "/console/sign-out"
            ], page
            for word in ("Replay", "Retry"):
                assert f">{word}" not in html, (page, word)
        for url in (
            f"/console/events/{event_id}/replay",
            f"/console/messages/{dead}/retry",
            "/console/quarantine/replay",
            "/console/undelivered/retry",
        ):
            assert client.post(url, data={"csrf": csrf}).status_code == 403, url
        for url in ("/console/quarantine/replay", "/console/undelivered/retry"):
            assert client.get(url).status_code == 403, url
        assert rows(db, event_id) == (0, 0)
        assert message(client, dead)["status"] == "dead"


class TestActions:
    def test_replay_one_and_all_matching(
        self, settings: Settings, client: TestClient, db: Database
    ) -> None:
        one, bad, other = quarantine(
            settings,
            f.received(("A", 1)),
            f.received(("B", -1)),
            f.received(("C", 2), id="P-OTHER"),
        )
        csrf = sign_in(client, f.ADMIN_TOKEN)
        page = client.get(f"/console/events/{one}").text
        assert 'id="replay"' in page
        answer = client.post(f"/console/events/{one}/replay", data={"csrf": csrf})
        assert answer.status_code == 200
        assert str(answer.url).endswith(f"/console/events/{one}?done=replay")
        assert 'id="event-status">accepted<' in answer.text
        assert rows(db, one) == (1, 1)

        confirm = client.get("/console/quarantine/replay", params={"payload_id": "P-OTHER"})
        assert "Replay <strong>1</strong> quarantined event?" in confirm.text
        everything = client.get("/console/quarantine/replay").text
        assert "Replay <strong>2</strong> quarantined events?" in everything
        done = client.post("/console/quarantine/replay", data={"csrf": csrf})
        assert done.status_code == 200
        assert 'id="result-replayed">1<' in done.text
        assert 'id="result-failed">1<' in done.text
        assert 'id="result-remaining">0<' in done.text
        assert rows(db, other) == (1, 1)
        assert rows(db, bad) == (0, 0)
        listed = client.get("/console/quarantine").text
        assert 'id="match-count">1<' in listed

        dismissal = {"reason": "a test line"}
        dismissed = client.post(
            f"/v1/events/{bad}/dismiss", json=dismissal, headers=f.admin_headers()
        )
        assert dismissed.status_code == 200
        refused = client.post(f"/console/events/{bad}/replay", data={"csrf": csrf})
        assert refused.status_code == 409
        assert f.event(client, bad)["status"] == "dismissed"

    def test_replay_goes_on_past_what_stays_quarantined(
        self,
        settings: Settings,
        client: TestClient,
        db: Database,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        bad, good = quarantine(settings, f.received(("B", -1)), f.received(("C", 2)))
        monkeypatch.setattr(bulk, "MAX_REPLAY", 1)
        csrf = sign_in(client, f.ADMIN_TOKEN)
        first = client.post("/console/quarantine/replay", data={"csrf": csrf}).text
        assert 'id="result-failed">1<' in first
        assert 'id="result-remaining">1<' in first
        go_on = re.search(r'<form method="post" action="([^"]+)">', first)
        assert go_on is not None
        assert go_on.group(1) == f"/console/quarantine/replay?after={bad}"
        second = client.post(go_on.group(1), data={"csrf": csrf}).text
        assert 'id="result-replayed">1<' in second
        assert 'id="result-remaining">0<' in second
        assert 'id="go-on"' not in second
        assert rows(db, good) == (1, 1)

    def test_retry_one_and_all_matching(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        sku, closed, delivered = kill(client, settings, db, erp)
        csrf = sign_in(client, f.ADMIN_TOKEN)
        again = client.post(f"/console/messages/{delivered}/retry", data={"csrf": csrf})
        assert again.status_code == 409
        assert "already delivered" in again.text
        page = client.get("/console/undelivered").text
        assert 'id="match-count">2<' in page
        assert "Unknown SKU SKU-0" in page
        back = "/console/undelivered?error=closed"
        answer = client.post(f"/console/messages/{closed}/retry", data={"csrf": csrf, "back": back})
        assert str(answer.url).endswith("/console/undelivered?error=closed&done=retry")
        assert message(client, closed)["status"] == "pending"

        confirm = client.get("/console/undelivered/retry", params={"type": "inventory.receipt"})
        assert "Retry <strong>1</strong> dead message?" in confirm.text
        done = client.post(
            "/console/undelivered/retry", params={"error": "sku"}, data={"csrf": csrf}
        )
        assert 'id="result-retried">1<' in done.text
        assert 'id="result-remaining">0<' in done.text
        assert message(client, sku)["status"] == "pending"
        # Somewhere else than the console is never a place to go back to.
        elsewhere = client.post(
            f"/console/messages/{sku}/retry",
            data={"csrf": csrf, "back": "https://evil.test/"},
            follow_redirects=False,
        )
        assert elsewhere.headers["location"] == "/console/undelivered?done=retry"


class TestPages:
    def test_overview_counts_and_charts(
        self, settings: Settings, client: TestClient, db: Database, erp: FakeErp
    ) -> None:
        quarantine(settings, f.received(("A", 1)))
        kill(client, settings, db, erp)
        sign_in(client, f.READ_TOKEN)
        html = client.get("/console").text
        assert 'id="tile-quarantined">1<' in html
        assert 'id="tile-dead">2<' in html
        assert 'id="tile-breaker">closed<' in html
        assert '<svg id="intake-chart"' in html
        assert '<svg id="backlog-chart"' in html
        # Four events this hour: three accepted, one quarantined.
        intake = re.search(r'<table id="intake">.*?</table>', html, re.S)
        assert intake is not None
        assert re.search(r"last hour</th><td>3</td><td>0</td><td>1</td>", intake.group(0))
        assert "accepted</title>" in html

    def test_events_filters_search_and_event_page(
        self, settings: Settings, client: TestClient
    ) -> None:
        accepted = f.post(client, f.received(("A", 2), id="P-FIND-ME"))["event_id"]
        [held] = quarantine(settings, f.received(("B", 1)))
        sign_in(client, f.READ_TOKEN)

        def ids(**params: str) -> list[int]:
            html = client.get("/console/events", params=params).text
            return [int(i) for i in re.findall(r'href="/console/events/(\d+)"', html)]

        assert ids() == [accepted, held]
        assert ids(status="quarantined") == [held]
        assert ids(status="", name="", tenant="") == [accepted, held]  # empty boxes: no filter
        assert ids(q="P-FIND-ME") == [accepted]
        assert ids(q=str(held)) == [held]
        assert ids(q="\u00b2") == []  # a digit to isdigit(), not to int()
        nested = base64.urlsafe_b64encode(b"[" * 1500).decode()
        assert client.get("/console/events", params={"cursor": nested}).status_code == 400
        assert ids(since="2999-01-01T00:00") == []
        assert ids(limit="1") == [accepted]
        bad = client.get("/console/events", params={"since": "yesterday"})
        assert bad.status_code == 422
        assert "text/html" in bad.headers["content-type"]

        page = client.get(f"/console/events/{accepted}").text
        assert "P-FIND-ME" in page
        assert "&#34;P-FIND-ME&#34;" in page or "&quot;P-FIND-ME&quot;" in page  # the raw body
        assert 'id="message-status">pending<' in page
        assert page.count('<td class="num">+2</td>') == 1
        assert client.get("/console/events/999999").status_code == 404

    def test_a_dismissed_event_says_so_and_offers_no_replay(
        self, settings: Settings, client: TestClient
    ) -> None:
        [held] = quarantine(settings, f.received(("A", 1)))
        answer = client.post(
            f"/v1/events/{held}/dismiss",
            json={"reason": "staging junk", "by": "alice"},
            headers=f.admin_headers(),
        )
        assert answer.status_code == 200, answer.text
        sign_in(client, f.ADMIN_TOKEN)
        page = client.get(f"/console/events/{held}").text
        assert 'id="event-status">dismissed<' in page
        assert "staging junk" in page
        assert "alice" in page
        assert 'id="replay"' not in page
        listed = client.get("/console/events", params={"status": "dismissed"}).text
        assert f'href="/console/events/{held}"' in listed

    def test_pages_are_escaped(self, settings: Settings, client: TestClient) -> None:
        [held] = quarantine(settings, f.received(("<script>alert(1)</script>", 1)))
        sign_in(client, f.READ_TOKEN)
        page = client.get(f"/console/events/{held}").text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    def test_stock_lookup_and_csv(self, client: TestClient) -> None:
        f.post(client, f.received(("A", 3), ("=HYPERLINK(1)", 1)))
        f.post(client, f.received(("A", 2)))
        sign_in(client, f.READ_TOKEN)
        assert "Give a product" in client.get("/console/stock").text
        html = client.get("/console/stock", params={"product_id": "A"}).text
        assert re.search(r'<td class="num">5</td>', html)
        stock = client.get("/console/stock.csv", params={"product_id": "A"})
        assert stock.headers["content-type"].startswith("text/csv")
        lines = stock.text.splitlines()
        assert lines[0].startswith("tenant,location_id,stock_location,product_id,on_hand")
        assert lines[1:] == [f"{f.TENANT},{f.STORE},main,A,5,false,,,"]
        ledger = client.get("/console/ledger.csv", params={"location_id": f.STORE}).text
        assert len(ledger.splitlines()) == 4
        assert "'=HYPERLINK(1)" in ledger

    def test_reconciliation_views(self, client: TestClient) -> None:
        f.post(client, f.asn(("A", 2)))
        f.post(client, f.counted(("A", 5, 5)))
        sign_in(client, f.READ_TOKEN)
        transfers = client.get("/console/reconciliation").text
        assert "in_transit" in transfers
        assert "A: 2 / 0 / -2" in transfers
        elsewhere = client.get("/console/reconciliation", params={"asn_id": "nope"}).text
        assert "No transfers match." in elsewhere
        counts = client.get("/console/reconciliation", params={"view": "counts"}).text
        assert '<table id="counts">' in counts
        assert re.search(r'<td class="num">5</td><td class="num">5</td>', counts)
        chunks = client.get("/console/reconciliation", params={"view": "chunks"}).text
        assert "No incomplete chunk sets." in chunks
        bad = client.get("/console/reconciliation", params={"view": "nope"})
        assert bad.status_code == 422

    def test_assets_are_local_and_pages_strict(self, client: TestClient) -> None:
        sign_in(client, f.READ_TOKEN)
        for page in PAGES:
            answer = client.get(page)
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"
            for url in re.findall(r'(?:src|href|action)="([^"]*)"', answer.text):
                assert url.startswith(("/console", "#")), (page, url)
        for asset in ("/console/static/console.css", "/console/static/console.js"):
            assert client.get(asset).status_code == 200
        assert client.get("/console/static/nope.js").status_code == 404
        # The console is not part of the API's description.
        assert all(
            not p.startswith("/console") for p in client.get("/openapi.json").json()["paths"]
        )


def test_no_page_shows_a_secret(settings: Settings, db: Database, erp: FakeErp) -> None:
    secrets = {
        "console_signing_key": SecretStr(SIGNING_KEY),
        "erp_authorization": SecretStr("Bearer erp-secret-value"),
        "erp_signing_secret": SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "metrics_token": SecretStr("metrics-secret-value"),
    }
    configured = settings.model_copy(update=secrets)
    with TestClient(create_app(configured)) as client:
        [held] = quarantine(settings, f.received(("A", 1)))
        kill(client, configured, db, erp)
        for token in (f.ADMIN_TOKEN, f.READ_TOKEN):
            csrf = sign_in(client, token)
            cookie = client.cookies[session.COOKIE]
            pages = [
                *PAGES,
                f"/console/events/{held}",
                "/console/events/1",
                "/console/undelivered/retry",
                "/console/quarantine/replay",
                "/console/sign-in",
                "/console/stock.csv",
                "/console/ledger.csv",
            ]
            for page in pages:
                text = client.get(page).text
                for secret in (
                    f.ADMIN_TOKEN,
                    f.READ_TOKEN,
                    f.WEBHOOK_KEY,
                    "previous-webhook-key",
                    SIGNING_KEY,
                    "erp-secret-value",
                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "metrics-secret-value",
                    cookie,
                    cookie.split(".")[1],
                ):
                    assert secret not in text, (page, secret[:6])
            client.post("/console/sign-out", data={"csrf": csrf})
