"""Browser test of an agent's week (issue 15): move a tenant in through the page, the tenant sets a
password from the invite and signs in, the agent moves them out and sees the refund."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from app.extensions import db
from app.models.payments import Payment
from app.payments.credit import credit_payment
from tests.e2e.test_admin_setup import empty_server, invite_path, sign_in  # noqa: F401  (fixture)
from tests.factories import DEFAULT_PASSWORD
from tests.web.conftest import committed  # noqa: F401  (fixture)
from tests.web.test_agent_moves import estate_kit  # noqa: F401  (fixture: vacant unit C7, meter read at 100, R2/kWh)

pytestmark = pytest.mark.e2e


def test_an_agent_moves_a_tenant_in_and_out_in_the_browser(app, estate_kit, empty_server, open_page, shots):  # noqa: F811
    url, unit = empty_server, estate_kit["unit"]
    agent = open_page({"width": 1280, "height": 900})
    sign_in(agent, url, estate_kit["agent"], DEFAULT_PASSWORD)

    agent.goto(f"{url}/agent/units/{unit}")
    agent.get_by_role("link", name="Move a tenant in").first.click()
    agent.wait_for_load_state()
    agent.fill("#f-full_name", "Palesa Mokoena")
    agent.fill("#f-email", "palesa@example.test")
    agent.fill("#f-move_in", estate_kit["today"])
    agent.fill("input[name=opening_electricity]", "99")  # below the last reading (100): refused, nothing written
    agent.get_by_role("button", name="Move in").click()
    agent.wait_for_load_state()
    assert "went backwards from 100 to 99" in agent.content()
    agent.fill("input[name=opening_electricity]", "101")
    agent.get_by_role("button", name="Move in").click()
    agent.wait_for_load_state()
    assert "Palesa Mokoena moved into unit C7" in agent.content()

    tenant = open_page({"width": 360, "height": 800})
    tenant.goto(url + invite_path(app, "palesa@example.test"))
    tenant.get_by_label("New password").fill("palesa-password-123")
    tenant.get_by_label("Repeat the password").fill("palesa-password-123")
    tenant.get_by_role("button", name="Save and sign in").click()
    tenant.wait_for_load_state()
    if "/login" in tenant.url:
        sign_in(tenant, url, "palesa@example.test", "palesa-password-123")
    tenant.goto(f"{url}/tenant/")
    assert "C7" in tenant.content()

    with app.app_context():  # R 100 paid in (an EFT confirmed by staff), then 10 kWh used at R 2
        payment = Payment(provider="eft", provider_ref="E2E-1", unit_id=unit, utility="electricity",
                          amount=Decimal("100.00"), status="to_confirm")
        db.session.add(payment)
        db.session.flush()
        credit_payment(db.session, payment)
        db.session.commit()
        db.session.remove()
    time.sleep(1.1)  # the closing reading must not share the opening one's second

    agent.goto(f"{url}/agent/units/{unit}/move-out")
    agent.fill("#f-move_out", estate_kit["today"])
    agent.fill("input[name=closing_electricity]", "111")
    agent.get_by_role("button", name="Show the final figures").click()
    agent.wait_for_load_state()
    assert "Refund R" in agent.content() and "80.00" in agent.content()
    agent.get_by_role("button", name="Confirm move-out").click()
    agent.wait_for_load_state()
    assert "moved out of unit C7" in agent.content() and "80.00" in agent.content()
    agent.screenshot(path=str(shots / "agent-move-out.png"), full_page=True)
    agent.goto(f"{url}/agent/estates/{estate_kit['estate']}/refunds")
    assert "Palesa Mokoena" in agent.content()
