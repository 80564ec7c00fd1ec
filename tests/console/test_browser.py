"""The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, through
selenium), against the real app served by uvicorn: the daily tasks, as an admin and as a
read-only user, at 1280 px and at a phone's width.

Without the browser these tests are skipped with the reason, except with
INVSYNC_REQUIRE_BROWSER=1 (set by .ci/run), where they must run. With
INVSYNC_UPDATE_SCREENSHOT=1 the overview's screenshot is written to docs/console.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from inventory_sync.clock import utcnow
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event, outbox_message
from tests import factories as f
from tests.erp_sync.conftest import FakeErp
from tests.live import live_server
from tests.ops.test_bulk import kill
from tests.ops.test_replay import quarantine

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRE_BROWSER = os.environ.get("INVSYNC_REQUIRE_BROWSER") == "1"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
WAIT_SECONDS = 15


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh headless Chromium at 1280 x 900, closed after the test."""
    missing = _missing()
    if missing is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"a browser is required (INVSYNC_REQUIRE_BROWSER=1): {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


class Console:
    """What a person does with the console, in the browser."""

    def __init__(self, driver: Any, base_url: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base_url = base_url
        self.by = By
        self.wait = WebDriverWait(driver, WAIT_SECONDS)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, selector: str) -> Any:
        return self.wait.until(lambda d: d.find_element(self.by.CSS_SELECTOR, selector))

    def all(self, selector: str) -> list[Any]:
        found: list[Any] = self.driver.find_elements(self.by.CSS_SELECTOR, selector)
        return found

    def text(self, selector: str) -> str:
        return str(self.find(selector).text)

    def click(self, selector: str) -> None:
        """Click and wait for the page it leads to."""
        old = self.driver.find_element(self.by.TAG_NAME, "html")
        self.find(selector).click()
        self.wait.until(lambda _: _stale(old))

    def at(self, path: str) -> bool:
        return str(self.driver.current_url).startswith(self.base_url + path)

    def sign_in(self, token: str) -> None:
        self.open("/console")
        assert self.at("/console/sign-in")
        self.find("#token").send_keys(token)
        self.click("#sign-in")
        assert self.at("/console"), self.driver.current_url
        self.find("#tile-quarantined")

    def sign_out(self) -> None:
        self.click("#sign-out")
        assert self.at("/console/sign-in")
        self.open("/console/events")
        assert self.at("/console/sign-in"), "signed out, yet a page opened"

    def fits(self) -> bool:
        """Nothing wider than the window: no sideways scrolling of the page."""
        return bool(
            self.driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth"
            )
        )


def _stale(element: Any) -> bool:
    from selenium.common.exceptions import WebDriverException

    try:
        element.tag_name  # noqa: B018 (raises once the page it belonged to is gone)
    except WebDriverException:
        # Stale, or (while the next page replaces it) "does not belong to the document".
        return True
    return False


def _spread_over_the_day(db: Database) -> None:
    """Move the events and messages back over the last hours, as a day of traffic would have
    them, so that the overview's charts have a shape."""
    now = utcnow()
    with db.transaction() as conn:
        ids = [row.id for row in conn.execute(inbound_event.select().order_by(inbound_event.c.id))]
        for n, event_id in enumerate(ids):
            at = now - timedelta(hours=(n * 7) % 23, minutes=n % 50)
            conn.execute(
                update(inbound_event).where(inbound_event.c.id == event_id).values(received_at=at)
            )
            conn.execute(
                update(outbox_message)
                .where(outbox_message.c.event_id == event_id)
                .values(created_at=at)
            )


def test_daily_tasks_as_admin(
    browser: Any,
    base_url: str,
    settings: Settings,
    client: TestClient,
    db: Database,
    erp: FakeErp,
    tmp_path: Path,
) -> None:
    fixable, broken = quarantine(settings, f.received(("Q-1", 2)), f.received(("Q-2", -1)))
    kill(client, settings, db, erp)  # the ERP answered 400 to two of three messages
    for n in range(12):
        f.post(client, f.received((f"SKU-{n % 4}", n + 1), id=f"P-DAY-{n}"))
    _spread_over_the_day(db)
    console = Console(browser, base_url)

    console.sign_in(f.ADMIN_TOKEN)
    assert console.text("#tile-quarantined") == "2"
    assert console.text("#tile-dead") == "2"
    assert console.text("#role") == "admin"
    assert console.all("#intake-chart rect")
    assert console.fits()
    shot = tmp_path / "console.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size < 150_000
    if os.environ.get("INVSYNC_UPDATE_SCREENSHOT") == "1" and "sqlite" in settings.database_url:
        shutil.copyfile(shot, SCREENSHOT)
    # Times are UTC on the page; hovering shows the local time (console.js).
    console.open("/console/events")
    title = console.find("#events time").get_attribute("title")
    assert "UTC" in title
    assert "local:" in title

    # Filter: the quarantined events only.
    from selenium.webdriver.support.ui import Select

    Select(console.find("select[name=status]")).select_by_visible_text("quarantined")
    console.click("#filter")
    assert console.at("/console/events?")
    shown = [a.text for a in console.all("#events tbody a")]
    assert shown == [str(fixable), str(broken)]

    # Open an event: its raw body; replay it and see its status change.
    console.click(f"a[href='/console/events/{fixable}']")
    assert console.text("#event-status") == "quarantined"
    assert "Q-1" in console.text("#raw-body")
    console.click("#replay")
    assert console.text("#event-status") == "accepted"
    assert "now accepted" in console.text("#notice")
    assert console.all("#replay") == []

    # Retry one dead message.
    console.open("/console/undelivered")
    assert console.text("#match-count") == "2"
    console.click("#messages button.retry-one")
    assert "due for delivery" in console.text("#notice")
    assert console.text("#match-count") == "1"

    # Retry all matching, with a confirmation that says how many.
    console.click("#retry-all")
    assert "Retry 1 dead message?" in console.text("#confirm-count")
    console.click("#confirm")
    assert console.text("#result-retried") == "1"
    assert console.text("#result-remaining") == "0"
    console.click("#back")
    assert console.text("#match-count") == "0"

    # Replay all matching: the one left stays quarantined, and says so.
    console.open("/console/quarantine")
    console.click("#replay-all")
    assert "Replay 1 quarantined event?" in console.text("#confirm-count")
    console.click("#confirm")
    assert console.text("#result-failed") == "1"

    # The keyboard reaches everything, from the skip link to signing out.
    from selenium.webdriver.common.keys import Keys

    console.open("/console")
    reached = []
    for _ in range(30):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.switch_to.active_element.get_attribute("id") or "")
        if reached[-1] == "sign-out":
            break
    assert reached[-1] == "sign-out", reached

    # A phone's width: still no sideways scrolling.
    browser.set_window_size(390, 844)
    for page in (
        "/console",
        "/console/events",
        "/console/undelivered",
        f"/console/events/{broken}",
    ):
        console.open(page)
        console.find("main")
        assert console.fits(), page
    browser.set_window_size(1280, 900)

    console.sign_out()


def test_read_only_sees_no_buttons(
    browser: Any,
    base_url: str,
    settings: Settings,
    client: TestClient,
    db: Database,
    erp: FakeErp,
) -> None:
    [held] = quarantine(settings, f.received(("Q-1", 2)))
    kill(client, settings, db, erp)
    console = Console(browser, base_url)

    console.sign_in(f.READ_TOKEN)
    assert console.text("#role") == "read-only"
    console.open(f"/console/events/{held}")
    assert console.text("#event-status") == "quarantined"
    assert console.all("#replay") == []
    console.open("/console/undelivered")
    assert console.text("#match-count") == "2"
    assert console.all("#retry-all") == []
    assert console.all(".retry-one") == []
    console.open("/console/quarantine")
    assert console.all("#replay-all") == []
    # Typing the address of an admin page is refused.
    console.open("/console/quarantine/replay")
    assert "needs an admin token" in console.text(".alert")
    console.sign_out()
