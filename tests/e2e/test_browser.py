"""A real browser against a live server with the demo data: sign in, read balances, sign out."""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}
MONEY = re.compile(r"^(R|M) -?\d{1,3}(\u202f\d{3})*\.\d{2}$|^-?\d{1,3}(\u202f\d{3})*\.\d{3} (kWh|kL)$")


def sign_in(page, server, role: str) -> None:
    email, password = server.logins[role]
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def page_fits(page) -> None:
    """Nothing sticks out sideways: the page scrolls only vertically (phones first), and
    tables stacked into cards for phones show every cell without sideways scrolling."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url} is {width} px wide in a {viewport} px viewport"
    clipped = page.evaluate("""() => [...document.querySelectorAll('.table-wrap')]
        .filter(wrap => wrap.querySelector('table.stack') && wrap.scrollWidth > wrap.clientWidth + 1)
        .map(wrap => `${wrap.closest('section')?.querySelector('h2')?.innerText}: `
                     + `${wrap.scrollWidth} px of table in ${wrap.clientWidth} px`)""")
    assert clipped == [], f"{page.url}: stacked tables cut off at {viewport} px: {clipped}"


def test_tenant_signs_in_reads_balances_opens_unit_and_signs_out(live_server, open_page, shots):
    page = open_page(DESKTOP)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)

    sign_in(page, live_server, "tenant")
    assert page.url == live_server.url + "/tenant/"
    assert page.get_by_role("heading", name="My unit").is_visible()
    balances = page.locator(".pocket-balance").all_inner_texts()
    assert balances, "the tenant sees pocket balances"
    assert all(MONEY.match(text) for text in balances), balances
    assert any(text.startswith("R ") for text in balances), "Sunbird sells rand into currency wallets"
    assert page.get_by_text(re.compile(r"Supply (on|off)")).first.is_visible()
    assert page.get_by_text(re.compile(r"Last reading .* ago|Last reading just now")).first.is_visible()
    assert page.evaluate("typeof htmx") == "object", "htmx is served and loaded"
    page.screenshot(path=str(shots / "tenant-1280.png"), full_page=True)

    unit_link = page.locator(".unit-card h2 a").first
    unit_name = unit_link.inner_text()
    unit_link.click()
    page.wait_for_load_state()
    assert re.search(r"/tenant/units/\d+$", page.url)
    assert page.get_by_role("heading", name=re.compile(unit_name)).is_visible()
    activity = page.locator("section:has(h2:text('Recent activity')) tbody tr")
    assert activity.count() > 1, "two days of demo data leave transactions on the unit"
    assert "No transactions yet." not in activity.first.inner_text()
    amounts = page.locator("section:has(h2:text('Recent activity')) td.num").all_inner_texts()
    assert all(MONEY.match(text) for text in amounts), amounts
    page.screenshot(path=str(shots / "unit-1280.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    page_fits(page)
    page.screenshot(path=str(shots / "unit-360.png"), full_page=True)
    page.goto(live_server.url + "/tenant/")
    page_fits(page)
    assert page.locator(".pocket-balance").first.is_visible()
    page.screenshot(path=str(shots / "tenant-360.png"), full_page=True)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert page.url == live_server.url + "/login"
    assert page.get_by_text("You are signed out.").is_visible()
    page.goto(live_server.url + "/tenant/")
    assert page.url.startswith(live_server.url + "/login"), "signed out means signed out"
    assert errors == [], errors


def test_wrong_password_shows_the_message_in_the_browser(live_server, open_page):
    page = open_page(PHONE)
    email, _ = live_server.logins["tenant"]
    page.goto(live_server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.get_by_text("That email and password do not match an active login.").is_visible()
    assert page.url.startswith(live_server.url + "/login")
    page_fits(page)


def test_staff_verify_the_ledger_with_htmx(live_server, open_page, shots):
    """The button posts with htmx (CSRF token from <body hx-headers>) and swaps in the result."""
    page = open_page(DESKTOP)
    sign_in(page, live_server, "staff")
    page.goto(live_server.url + "/staff/ledger")
    page.get_by_role("button", name="Verify the ledger now").click()
    result = page.locator("#verify-result")
    result.get_by_text("LEDGER OK").wait_for(timeout=15_000)
    assert "SUN:" in result.inner_text() and "chain intact" in result.inner_text()
    assert page.url == live_server.url + "/staff/ledger", "htmx swapped the fragment in place"
    page.screenshot(path=str(shots / "staff-ledger-1280.png"), full_page=True)


@pytest.mark.parametrize("role", ["staff", "owner", "family", "body_corporate", "agent", "utility"])
def test_every_layer_landing_page_works_at_phone_and_desktop_width(live_server, open_page, shots, role):
    for name, viewport in (("1280", DESKTOP), ("360", PHONE)):
        page = open_page(viewport)
        sign_in(page, live_server, role)
        assert "/login" not in page.url and "/no-access" not in page.url, page.url
        assert page.locator("h1").first.is_visible()
        assert page.get_by_text("No estate is linked", exact=False).count() == 0
        assert page.get_by_text("No units are linked", exact=False).count() == 0
        assert page.get_by_text("No wallet has been shared", exact=False).count() == 0
        if viewport is PHONE:
            page_fits(page)
        page.screenshot(path=str(shots / f"{role}-{name}.png"), full_page=True)


def test_staff_pages_run_under_the_content_security_policy(live_server, open_page):
    """No CSP refusal in the console on the staff pages, and data-confirm asks before it posts
    (the confirm() that was an inline onclick, now in static/js/meterwise.js)."""
    page = open_page(DESKTOP)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live_server, "staff")
    for path in ("/staff/", "/staff/sources", "/staff/ledger", "/staff/metering"):
        response = page.goto(live_server.url + path)
        assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    asked: list[str] = []

    def answer(dialog, accept: bool):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.get_by_role("button", name="Pause ingest").click()
    page.wait_for_timeout(300)
    assert asked == ["Pause ingest for maintenance?"]
    assert page.get_by_role("button", name="Pause ingest").is_visible(), "cancelled: nothing posted"
    page.once("dialog", lambda dialog: answer(dialog, True))
    page.get_by_role("button", name="Pause ingest").click()
    page.get_by_role("button", name="Resume ingest").wait_for()
    page.get_by_role("button", name="Resume ingest").click()  # no question to resume
    page.get_by_role("button", name="Pause ingest").wait_for()
    assert len(asked) == 2
    assert errors == [], errors
