"""Every tenant page checks scope: a tenant of unit A gets 404 for each of unit B's URLs."""
from __future__ import annotations

import pytest

from app.models import Account, Unit
from tests import factories
from tests.helpers import csrf_from

PAGES = ["/tenant/units/{unit}", "/tenant/units/{unit}/usage?utility=electricity&grain=daily",
         "/tenant/units/{unit}/usage?utility=electricity&grain=weekly&format=csv",
         "/tenant/units/{unit}/transactions", "/tenant/units/{unit}/transactions?format=csv",
         "/tenant/units/{unit}/transactions/{tx}", "/tenant/units/{unit}/alerts"]


@pytest.fixture
def two_units(world, committed):
    """A top-up on unit A's and on unit B's electricity pocket; their transaction ids."""
    with committed() as s:
        ids = {}
        for name, unit_id in (("a", world.unit_a), ("b", world.unit_b)):
            unit = s.get(Unit, unit_id)
            pocket = s.query(Account).filter(Account.wallet_id == unit_wallet(s, unit),
                                             Account.utility == "electricity").one()
            ids[name] = factories.make_topup(s, pocket, "10.00").transaction_id
    return ids


def unit_wallet(s, unit):
    from app.models import Wallet

    return s.query(Wallet.id).filter(Wallet.unit_id == unit.id).scalar()


@pytest.mark.parametrize("page", PAGES)
def test_tenant_of_unit_a_gets_404_for_every_unit_b_page(world, two_units, login, page):
    client = login(world.emails["tenant"])
    assert client.get(page.format(unit=world.unit_a, tx=two_units["a"])).status_code == 200
    assert client.get(page.format(unit=world.unit_b, tx=two_units["b"])).status_code == 404
    if "{tx}" in page:  # unit A's URL with unit B's transaction
        assert client.get(page.format(unit=world.unit_a, tx=two_units["b"])).status_code == 404


def test_tenant_of_unit_a_cannot_save_alerts_on_unit_b(world, login, committed):
    client = login(world.emails["tenant"])
    token = csrf_from(client.get(f"/tenant/units/{world.unit_a}/alerts").get_data(as_text=True))
    data = {"csrf_token": token, "frequency": "daily", "channels": ["in_app"], "threshold_electricity": "50"}
    assert client.post(f"/tenant/units/{world.unit_b}/alerts", data=data).status_code == 404
    assert client.post(f"/tenant/units/{world.unit_a}/alerts", data=data).status_code == 302
    with committed() as s:
        from app.models.budget_alerts import BudgetAlertSetting

        assert [row.unit_id for row in s.query(BudgetAlertSetting)] == [world.unit_a]
