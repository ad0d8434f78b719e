"""The owner's main flow in a real browser: portfolio, switch estate, reconciliation, usage, vacancy."""
from __future__ import annotations

import pytest

from tests.e2e.test_browser import DESKTOP, PHONE, page_fits, sign_in

pytestmark = pytest.mark.e2e


def watch_errors(page) -> list[str]:
    """Collect console errors, page errors and failed responses while the test runs."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    return errors


@pytest.mark.parametrize("name,viewport", [("1280", DESKTOP), ("360", PHONE)])
def test_owner_switches_estate_and_reads_reconciliation_usage_and_vacancy(live_server, open_page, shots,
                                                                          name, viewport):
    page = open_page(viewport)
    errors = watch_errors(page)
    sign_in(page, live_server, "owner")
    assert page.url == live_server.url + "/owner/"
    assert page.get_by_role("heading", name="My properties").is_visible()
    everything = int(page.locator(".figures dt:text-is('Units') + dd").inner_text())
    assert everything >= 2, "the demo owner owns units in both estates"
    page.screenshot(path=str(shots / f"owner-portfolio-{name}.png"), full_page=True)

    page.get_by_label("Estate").select_option(label="Maseru Heights")
    page.get_by_role("button", name="Show").first.click()
    page.wait_for_load_state()
    assert "estate=" in page.url
    assert page.get_by_role("heading", name="My properties in Maseru Heights").is_visible()
    in_estate = int(page.locator(".figures dt:text-is('Units') + dd").inner_text())
    assert 0 < in_estate < everything
    estates = set(page.locator("td[data-label='Estate']").all_inner_texts())
    assert estates == {"Maseru Heights"}, estates
    if viewport is PHONE:
        page_fits(page)

    page.get_by_role("link", name="Reconciliation").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Revenue reconciliation in Maseru Heights").is_visible()
    assert page.locator("section.reconciliation").count() >= 1, "Maseru's wallets were billed and topped up"
    assert page.locator("section.reconciliation tfoot td").first.inner_text() == "Total"
    page.wait_for_function("document.querySelector('canvas[data-chart]').dataset.drawn === '1'")
    if viewport is PHONE:
        page_fits(page)
    page.screenshot(path=str(shots / f"owner-reconciliation-{name}.png"), full_page=True)

    page.get_by_role("link", name="Usage").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Usage in Maseru Heights").is_visible()
    assert page.get_by_role("heading", name="Top consumers").is_visible()
    page.wait_for_function("document.querySelector('canvas[data-chart=chart-daily]').dataset.drawn === '1'")
    assert page.locator("table.per-unit tbody tr").count() == in_estate
    if viewport is PHONE:
        page_fits(page)
    page.screenshot(path=str(shots / f"owner-usage-{name}.png"), full_page=True)

    page.get_by_role("link", name="Vacancy").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Vacancy in Maseru Heights").is_visible()
    assert page.locator("table.vacancy-rate tbody tr").count() == 12
    assert page.locator("table.history tbody tr").count() >= in_estate, "every unit has its handover change"
    if viewport is PHONE:
        page_fits(page)
    page.screenshot(path=str(shots / f"owner-vacancy-{name}.png"), full_page=True)
    assert errors == [], errors
