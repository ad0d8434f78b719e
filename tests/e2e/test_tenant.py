"""The tenant's main flow in a real browser: dashboard, chart grains over HTMX, a charge's
explanation, budget alert settings; screenshots at 1280 and 360 px."""
from __future__ import annotations

import re

import pytest

from tests.e2e.test_browser import DESKTOP, PHONE, page_fits, sign_in

pytestmark = pytest.mark.e2e


def test_tenant_dashboard_charts_history_and_alerts(live_server, open_page, shots):
    page = open_page(DESKTOP)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)

    sign_in(page, live_server, "tenant")
    page.locator(".unit-card h2 a").first.click()
    page.wait_for_load_state()
    assert re.search(r"/tenant/units/\d+$", page.url)
    electricity = page.locator("#pocket-electricity")
    assert electricity.locator(".big-balance").inner_text().startswith("R ")
    assert re.fullmatch(r"\d+ days?|no recent use", electricity.locator(".days-left").inner_text())
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('#usage canvas'))")
    page.screenshot(path=str(shots / "tenant-dashboard-1280.png"), full_page=True)

    # Switching the grain swaps only the chart section: the page itself is not reloaded.
    page.evaluate("window.stillTheSamePage = true")
    page.locator("#usage .tabs a[data-grain=weekly]").click()
    page.wait_for_selector("#usage a[data-grain=weekly][aria-current]")
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.locator("#usage canvas").get_attribute("data-grain") == "weekly"
    page.wait_for_function("() => Chart.getChart(document.querySelector('#usage canvas'))")
    page.locator("#usage summary").click()
    assert page.locator("#usage table.usage-table tbody tr").count() == 12

    # A charge explains itself, in place.
    page.get_by_role("link", name="Transactions", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("table.history td.balance").count() > 1
    page.locator("a.explain", has_text="Why this charge?").first.click()
    explanation = page.locator(".explanation").first
    explanation.wait_for()
    text = explanation.inner_text()
    assert "Tariff:" in text and "Flat rate tariff in force from" in text and "Meter" in text
    page.screenshot(path=str(shots / "tenant-history-1280.png"), full_page=True)

    # Budget alerts: a bad threshold is refused, a good one saved.
    page.goto(page.url.rsplit("/transactions", 1)[0] + "/alerts")
    page.get_by_label("Electricity").fill("cheap")
    page.get_by_role("button", name="Save alert settings").click()
    page.wait_for_load_state()
    assert page.get_by_text("Enter the threshold as a number").is_visible()
    # The refusal above is expected (its response and the console's note of it).
    errors[:] = [e for e in errors if not e.startswith("400 ") and "status of 400" not in e]
    page.get_by_label("Electricity").fill("150")
    page.get_by_label("SMS").check()
    page.get_by_role("button", name="Save alert settings").click()
    page.wait_for_load_state()
    assert page.get_by_text("Alert settings saved.").is_visible()
    assert page.get_by_label("Electricity").input_value() == "150.00"
    page.screenshot(path=str(shots / "tenant-alerts-1280.png"), full_page=True)

    page.set_viewport_size(PHONE)
    for name, path in (("alerts", None), ("history", "/transactions"), ("dashboard", "")):
        if path is not None:
            page.goto(page.url.rsplit("/alerts", 1)[0].rsplit("/transactions", 1)[0] + path)
            page.wait_for_load_state()
        page_fits(page)
        page.screenshot(path=str(shots / f"tenant-{name}-360.png"), full_page=True)
    assert errors == [], errors
