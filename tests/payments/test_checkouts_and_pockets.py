"""Pockets open on demand (only where a meter draws or something posts), and PayFast
checkouts that are abandoned expire, while a cancel at the gateway says so (issue 12, items 2, 3)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Account, Unit, Wallet, utcnow
from app.models.payments import Payment
from tests import factories
from tests.emulators import serving
from tests.payments.test_pages import hidden_fields
from tests.payments.test_payfast import post_itn, start_payment
from tests.helpers import csrf_from, table_with


def pockets_of(unit_id: int) -> list[str]:
    return sorted(db.session.scalars(select(Account.utility).join(Wallet, Wallet.id == Account.wallet_id)
                                     .where(Wallet.unit_id == unit_id)))


def test_crediting_opens_only_the_pocket_paid_into(app, kit, committed):
    from app.payments.credit import credit_payment
    with committed() as s:
        estate = s.get(Unit, kit.unit_id).estate
        unit = factories.make_unit(s, estate, number="HN02")  # no wallet yet, one meter
        factories.make_meter(s, unit, utility="water")
        unit_id = unit.id
    with app.app_context():
        payment = Payment(provider="mpesa", provider_ref="QQ1", amount=Decimal("20"), status="unmatched",
                          unit_id=unit_id, estate_id=kit.estate_id)
        db.session.add(payment)
        credit_payment(db.session, payment)  # no pocket named: the unit's metered one
        db.session.commit()
        assert pockets_of(unit_id) == ["water"]
        assert payment.utility == "water"
        db.session.remove()


def test_topup_form_and_filter_offer_only_pockets_with_a_meter(app, kit, login, committed):
    with committed() as s:
        # The old way opened all four pockets; solar stays empty and has no meter.
        factories.make_wallet(s, s.get(Unit, kit.unit_id))
    tenant = login(kit.tenant_email)
    form = tenant.get("/tenant/topup").get_data(as_text=True)
    assert '<option value="electricity"' in form and '<option value="solar"' not in form
    token = csrf_from(form)
    refused = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "solar",
                                                 "amount": "10", "csrf_token": token})
    assert refused.status_code == 400 and "has no solar meter" in refused.get_data(as_text=True)
    filters = tenant.get(f"/tenant/units/{kit.unit_id}/transactions").get_data(as_text=True)
    assert '<option value="electricity"' in filters and '<option value="solar"' not in filters
    dashboard = tenant.get(f"/tenant/units/{kit.unit_id}").get_data(as_text=True)
    assert 'id="pocket-electricity"' in dashboard and 'id="pocket-solar"' not in dashboard
    with app.app_context():
        assert db.session.scalar(select(Payment)) is None
        db.session.remove()


def test_choosing_another_unit_swaps_the_pocket_list(app, kit, login, committed):
    from app.models import RoleGrant, User
    with committed() as s:
        other = factories.make_unit(s, s.get(Unit, kit.unit_id).estate)
        factories.make_meter(s, other, utility="hot_water")
        user = s.scalar(select(User).where(User.email == kit.tenant_email))
        user.grants.append(RoleGrant(role="tenant", unit_id=other.id))
        other_id = other.id
    tenant = login(kit.tenant_email)
    fragment = tenant.get(f"/tenant/topup?unit_id={other_id}", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="pocket-field">')
    assert '<option value="hot_water"' in text and '<option value="electricity"' not in text


def test_abandoned_checkouts_expire_and_a_late_itn_still_credits_once(app, kit, login, payfast_gateway,
                                                                      client, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_EXPIRY_MINUTES", 60)
    abandoned = start_payment(app, kit, amount="30.00")
    fresh = start_payment(app, kit, amount="40.00")
    with app.app_context():
        old = db.session.scalar(select(Payment).where(Payment.checkout_id == abandoned["m_payment_id"]))
        old.created_at = utcnow() - timedelta(minutes=61)
        db.session.commit()
        db.session.remove()
    tenant = login(kit.tenant_email)
    page = tenant.get("/tenant/payments").get_data(as_text=True)
    rows = table_with(page, "Amount").texts()
    assert [row[-1] for row in rows] == ["waiting for PayFast"]  # the expired one is hidden
    assert "Show 1 expired checkout" in page
    shown = table_with(tenant.get("/tenant/payments?expired=1").get_data(as_text=True), "Amount").texts()
    assert [row[-1] for row in shown] == ["waiting for PayFast", "expired (not paid)"]
    staff = login(kit.staff_email)
    listed = table_with(staff.get("/staff/payments").get_data(as_text=True), "Provider ref").texts()
    assert [row[7] for row in listed] == ["Waiting for payment"]
    listed = table_with(staff.get("/staff/payments?status=expired").get_data(as_text=True), "Provider ref").texts()
    assert [(row[6], row[7]) for row in listed] == [("M 30.00", "Expired (never paid)")]

    itn = payfast_gateway.state.make_itn(abandoned)  # PayFast completes it after all
    assert post_itn(client, itn).status_code == 200
    assert post_itn(client, itn).status_code == 200
    with app.app_context():
        late = db.session.scalar(select(Payment).where(Payment.checkout_id == abandoned["m_payment_id"]))
        assert late.status == "credited"
        assert db.session.scalar(select(Account.balance).where(Account.id == kit.pocket_id)) == Decimal("30.00")
        db.session.remove()
    assert fresh  # still waiting, untouched


def test_cancel_at_the_gateway_returns_with_a_message(app, kit, payfast_gateway, login, monkeypatch):
    with serving(app) as portal:
        monkeypatch.setitem(app.config, "PUBLIC_URL", portal)
        tenant = login(kit.tenant_email)
        token = csrf_from(tenant.get("/tenant/topup").get_data(as_text=True))
        html = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "electricity",
                                                  "amount": "25", "csrf_token": token}).get_data(as_text=True)
        fields = hidden_fields(html)
        back = requests.post(f"{payfast_gateway.base_url}/eng/process/pay",
                             data=fields + [("outcome", "CANCELLED")], timeout=20, allow_redirects=False)
        location = urlsplit(back.headers["Location"])
        page = tenant.get(f"{location.path}?{location.query}").get_data(as_text=True)
    assert "Payment cancelled" in page
    with app.app_context():
        assert db.session.scalar(select(Payment.status)) == "cancelled"
        db.session.remove()
