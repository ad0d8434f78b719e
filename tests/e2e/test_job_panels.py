"""A finished job panel refreshes the figures its job changed, without a reload (issue 12, item 8)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import DESKTOP, PHONE, page_fits, sign_in
from tests.emulators import serving

pytestmark = pytest.mark.e2e


@pytest.fixture
def uisp_emulator(app, monkeypatch):
    """A UISP emulator with 12 customers, and the app pointed at it."""
    from tests.emulators.uisp import API, create_app

    with serving(create_app(size=12, latency=0, estates=("SUNB", "HIGH"))) as base:
        monkeypatch.setitem(app.config, "UISP_URL", base + API)
        monkeypatch.setitem(app.config, "UISP_BACKOFF", 0.01)
        yield


def test_statement_run_and_uisp_refresh_update_their_pages_in_place(live_server, uisp_emulator,
                                                                    open_page, shots):
    page = open_page(DESKTOP)
    failures = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    page.on("console", lambda message: failures.append(message.text) if message.type == "error" else None)
    sign_in(page, live_server, "staff")

    # Statements: jobs run inline (no REDIS_URL), so the POST answers with a finished panel.
    page.goto(live_server.url + "/staff/statements")
    units = page.locator("#statement-units h2")
    before = re.search(r"(\d+) of (\d+) issued", units.inner_text())
    assert before and before[1] == "0", units.inner_text()
    total = before[2]
    page.evaluate("window.loadedOnce = true")  # a reload would forget this
    page.get_by_role("button", name="Issue statements now").click()
    expect(page.locator("#statement-run")).to_contain_text("Finished", timeout=60_000)
    expect(units).to_contain_text(f"{total} of {total} issued", timeout=10_000)
    expect(page.get_by_role("button", name="Run again (retry unsent emails)")).to_be_visible()
    expect(page.locator("#statement-units")).not_to_contain_text("not issued")
    # MAIL_URL is unset in tests: the emails were written to the log, and the page says so.
    expect(page.locator("#statement-units .badge").first).to_contain_text("written to log")
    expect(page.locator("#statement-run")).to_contain_text("0 sent")
    assert page.evaluate("window.loadedOnce") is True, "the page was not reloaded"
    page.screenshot(path=str(shots / "statements-after-run-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page_fits(page)
    page.screenshot(path=str(shots / "statements-after-run-360.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    # Sources: the refresh bar, the stale banner and the customer count follow the refresh.
    page.goto(live_server.url + "/staff/sources")
    expect(page.locator("#uisp-freshness")).to_contain_text("Last full refresh never")
    expect(page.locator(".stale-banner")).to_be_visible()
    customers = page.locator("#uisp-copy dt:text('Customers') + dd")
    expect(customers).to_have_text("0")
    page.evaluate("window.loadedOnce = true")
    page.locator("main").get_by_role("button", name="Refresh from UISP").click()
    expect(page.locator("#uisp-refresh")).to_contain_text("Finished", timeout=60_000)
    expect(page.locator("#uisp-freshness")).to_contain_text("Last full refresh just now", timeout=10_000)
    expect(page.locator(".stale-banner")).to_have_count(0)
    expect(customers).to_have_text("12")
    assert page.evaluate("window.loadedOnce") is True, "the page was not reloaded"
    page.screenshot(path=str(shots / "sources-after-refresh-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page_fits(page)
    page.screenshot(path=str(shots / "sources-after-refresh-360.png"), full_page=True)
    assert failures == []
