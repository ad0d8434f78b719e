"""Languages in a real browser (X8): the French demo tenant's dashboard, switched to English and back."""
from __future__ import annotations

import re

import pytest

from tests.e2e.test_browser import DESKTOP, PHONE, page_fits, sign_in

pytestmark = pytest.mark.e2e


def test_switching_language_changes_labels_and_number_format(live_server, open_page, shots):
    page = open_page(DESKTOP)
    sign_in(page, live_server, "tenant_fr")
    page.locator(".unit-card h2 a").first.click()
    page.wait_for_load_state()
    balance = page.locator("#pocket-electricity .big-balance")
    assert page.locator("#pocket-electricity dt").first.inner_text() == "Jours de crédit restants"
    assert re.fullmatch(r"-?\d{1,3}(\u202f\d{3})*,\d{2}\u00a0R", balance.inner_text()), balance.inner_text()

    page.locator(".language-switch button[value=en]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#pocket-electricity dt").first.inner_text() == "Days of credit left"
    assert re.fullmatch(r"R -?\d{1,3}(\u202f\d{3})*\.\d{2}", balance.inner_text()), balance.inner_text()

    page.locator(".language-switch button[value=st]").click()
    page.wait_for_load_state()
    assert page.locator("#pocket-electricity dt").first.inner_text() == "Matsatsi a chelete e setseng"
    page.set_viewport_size(PHONE)
    page.reload()  # laid out at phone width from the start (a chart resizes itself only later)
    page.wait_for_load_state()
    page_fits(page)
    page.screenshot(path=str(shots / "tenant-dashboard-st-360.png"), full_page=True)
