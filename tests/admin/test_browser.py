"""The admin pages in a real browser: Debian's Chromium, driven by Playwright.

The app runs on a loopback port in a thread. Each test keeps screenshots of the pages it saw
(``build/test-artifacts/admin``, or ``$KAIDOKI_TEST_ARTIFACTS``) and runs axe on every page:
no critical accessibility violation is allowed.
"""

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright
from werkzeug.serving import make_server

from app.db import get_session
from app.models import Outbox, OutboxStatus
from tests.admin.conftest import NOW, OPERATOR, PASSWORD
from tests.admin.test_customers import _forecast_plan
from tests.admin.test_pages import EARLIER, _busiest_product, _dead_webhook
from tests.conftest import BASE_URL
from tests.scheduler.helpers import deliver, dispatch

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("KAIDOKI_TEST_ARTIFACTS", "build/test-artifacts")) / "admin"


def _chromium() -> str:
    found = os.environ.get("KAIDOKI_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Debian's chromium is needed for the browser tests (make system-deps)")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def live_url(shop: Flask, staff: None) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, shop, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


class Visit:
    """A signed-in browser tab that checks and photographs every page it shows."""

    def __init__(self, page: Page, base: str, name: str) -> None:
        self.page, self.base, self.name, self.shots = page, base, name, 0
        self.console_errors: list[str] = []
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # A CSP refusal or a missing file shows up here.
        if message.type == "error":
            self.console_errors.append(message.text)

    def check(self, label: str) -> None:
        """Screenshot the page, and fail on critical accessibility problems or CSP errors."""
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"{self.name}-{self.shots:02d}-{label}.png",
                             full_page=True)  # fmt: skip
        results = Axe().run(self.page)
        critical = [v for v in results.response["violations"] if v["impact"] == "critical"]
        assert not critical, results.generate_report()
        assert not self.console_errors, self.console_errors

    def sign_in(self, email: str = OPERATOR) -> None:
        self.page.goto(self.base + "/admin/")
        expect(self.page).to_have_url(re.compile(r"/admin/login\?next="))
        self.check("login")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Dashboard")).to_be_visible()


@pytest.fixture
def visit(browser: Browser, live_url: str, request: Any) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    yield Visit(context.new_page(), live_url, request.node.name)
    context.close()


def test_signing_in_and_reading_the_dashboard(visit: Visit) -> None:
    visit.sign_in()
    page = visit.page
    expect(page.get_by_text(f"{OPERATOR} (operator)")).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()
    visit.check("dashboard")
    for section in ("Products", "Customers", "Deliveries", "Audit log"):
        page.get_by_role("navigation").get_by_role("link", name=section).click()
        expect(page.get_by_role("heading", level=1, name=section)).to_be_visible()
        visit.check(section.lower().replace(" ", "-"))


def test_editing_a_product_with_the_preview_then_saving_it(visit: Visit, shop: Flask) -> None:
    product = _busiest_product(shop)
    visit.sign_in()
    page = visit.page
    page.get_by_role("link", name="Products").click()
    page.get_by_role("link", name=product.external_id).click()
    visit.check("product")
    page.get_by_label("Lead time (days)").fill(str(EARLIER["lead_time_days"]))
    page.get_by_label("Minimum interval (days)").fill(str(EARLIER["min_interval_days"]))
    page.get_by_role("button", name="Preview the change").click()
    expect(page.get_by_role("heading", name="What the change does")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"[1-9]\d* plans would be prompted earlier"))
    ).to_be_visible()
    expect(page.locator(".preview svg.chart")).to_be_visible()
    visit.check("preview")
    page.get_by_role("button", name="Save and reschedule").click()
    expect(page.get_by_role("status")).to_contain_text("plans are now prompted earlier")
    expect(page.get_by_label("Lead time (days)")).to_have_value(str(EARLIER["lead_time_days"]))
    visit.check("saved")
    with shop.app_context():
        assert get_session().get_one(type(product), product.id).lead_time_days == 10


def test_retrying_a_dead_lettered_webhook(visit: Visit, shop: Flask) -> None:
    message_id = _dead_webhook(shop)
    visit.sign_in()
    page = visit.page
    page.goto(visit.base + "/admin/deliveries?status=dead")
    expect(page.get_by_role("cell", name="HTTP 503 from shop")).to_be_visible()
    visit.check("dead-letters")
    page.get_by_role("button", name=f"Retry message {message_id}").click()
    expect(page.get_by_role("status")).to_contain_text("queued again")
    visit.check("retried")
    with shop.app_context():
        assert get_session().get_one(Outbox, message_id).status is OutboxStatus.PENDING


def test_opening_a_customers_forecast_chart(visit: Visit, shop: Flask) -> None:
    customer, plan = _forecast_plan(shop)
    visit.sign_in()
    page = visit.page
    page.get_by_role("navigation").get_by_role("link", name="Customers").click()
    page.get_by_label("Email, name or external id").fill(customer.external_id)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=customer.external_id, exact=True).click()
    visit.check("customer")
    chart = page.get_by_role("img", name=re.compile("purchases and forecast")).first
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600  # readable on a laptop screen
    assert plan.explanation is not None
    expect(page.get_by_text(plan.explanation).first).to_be_visible()


def test_reading_a_prompt_email_in_the_mailbox(visit: Visit, shop: Flask) -> None:
    dispatch(shop, NOW)
    assert deliver(shop, NOW).delivered
    visit.sign_in()
    page = visit.page
    page.get_by_role("navigation").get_by_role("link", name="Mailbox").click()
    expect(page.get_by_role("heading", level=1, name="Mailbox")).to_be_visible()
    visit.check("mailbox")
    page.get_by_role("table").get_by_role("link").first.click()
    html_part = page.frame_locator("iframe.email")
    expect(html_part.get_by_role("link").first).to_be_visible()  # the email's own HTML
    expect(page.locator("pre.email a").first).to_have_attribute("href", re.compile(r"/l/p/"))
    visit.check("mailbox-message")


def test_a_link_in_a_mailbox_emails_html_opens_its_page(
    visit: Visit, shop: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link pages refuse to be framed: a link in the framed HTML part must open the page in
    the top window, not a browser error inside the frame."""
    monkeypatch.setattr("app.links.views.utcnow", lambda: NOW)  # the links' day, not today
    dispatch(shop, NOW)
    assert deliver(shop, NOW).delivered

    def to_live_server(route: Route) -> None:
        # The emails link to the configured base URL; the app under test serves it here.
        url = route.request.url.replace(BASE_URL, visit.base, 1)
        route.fulfill(response=route.fetch(url=url))

    visit.page.context.route(re.compile("^" + re.escape(BASE_URL) + "/"), to_live_server)
    visit.sign_in()
    page = visit.page
    page.goto(visit.base + "/admin/mailbox/")
    page.get_by_role("table").get_by_role("link").first.click()
    html_part = page.frame_locator("iframe.email")
    html_part.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile("^" + re.escape(BASE_URL) + "/l/p/"))
    expect(page.locator('button[name="action"][value="confirm"]')).to_be_visible()
    visit.check("prompt-page-from-mailbox")
