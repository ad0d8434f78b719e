"""Payment pages: a tenant tops up end to end through the PayFast emulator; staff work the
unmatched queue and EFT statements; tenants see only their own payments."""
from __future__ import annotations

import io
import re
from decimal import Decimal
from html import unescape
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Account
from app.models.payments import Payment
from tests.emulators import serving
from tests.helpers import csrf_from, table_with


def hidden_fields(page: str) -> list[tuple[str, str]]:
    """The hidden fields of the PayFast checkout form only (the page has other forms: the language switch)."""
    form = re.search(r'<form[^>]*action="[^"]*/eng/process"[^>]*>(.*?)</form>', page, re.S)
    return [(unescape(n), unescape(v)) for n, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(1) if form else page)
            if n != "csrf_token"]


def balance(app, account_id: int) -> Decimal:
    with app.app_context():
        value = db.session.scalar(select(Account.balance).where(Account.id == account_id))
        db.session.remove()
        return value


def test_tenant_tops_up_through_payfast_end_to_end(app, kit, payfast_gateway, login, monkeypatch):
    with serving(app) as portal:
        monkeypatch.setitem(app.config, "PUBLIC_URL", portal)
        tenant = login(kit.tenant_email)
        token = csrf_from(tenant.get("/tenant/topup").get_data(as_text=True))
        page = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "electricity",
                                                  "amount": "120", "csrf_token": token})
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert f'action="{payfast_gateway.base_url}/eng/process"' in html
        fields = hidden_fields(html)
        assert dict(fields)["notify_url"] == f"{portal}/webhooks/payfast/itn"

        checkout = requests.post(f"{payfast_gateway.base_url}/eng/process", data=fields, timeout=10)
        assert checkout.status_code == 200 and "Pay now" in checkout.text
        paid = requests.post(f"{payfast_gateway.base_url}/eng/process/pay",
                             data=fields + [("outcome", "COMPLETE")], timeout=20, allow_redirects=False)
        assert paid.status_code in (302, 303)
        assert "PayFast confirms" in tenant.get(urlsplit(paid.headers["Location"]).path).get_data(as_text=True)
        assert payfast_gateway.state.itns_posted == [(f"{portal}/webhooks/payfast/itn", 200)]
    assert balance(app, kit.pocket_id) == Decimal("120.00")
    history = tenant.get("/tenant/payments").get_data(as_text=True)
    assert table_with(history, "Amount").texts()[0][-1] == "received"


def test_checkout_form_with_a_tampered_amount_is_refused_by_the_gateway(app, kit, payfast_gateway, login):
    tenant = login(kit.tenant_email)
    token = csrf_from(tenant.get("/tenant/topup").get_data(as_text=True))
    html = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "electricity",
                                              "amount": "50", "csrf_token": token}).get_data(as_text=True)
    fields = [(k, "5.00" if k == "amount" else v) for k, v in hidden_fields(html)]
    assert requests.post(f"{payfast_gateway.base_url}/eng/process", data=fields, timeout=10).status_code == 400


def test_topup_refuses_bad_amounts_and_foreign_units(app, kit, login, committed):
    from tests import factories
    with committed() as s:
        other = factories.make_estate_with_wallet(s).unit.id
    tenant = login(kit.tenant_email)
    token = csrf_from(tenant.get("/tenant/topup").get_data(as_text=True))
    bad = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "electricity",
                                             "amount": "abc", "csrf_token": token})
    assert bad.status_code == 400 and "is not an amount" in bad.get_data(as_text=True)
    for amount, reason in (("1e3", "no spaces, signs, exponents"), ("12.345", "at most 2 decimals"),
                           ("50000.01", "above the largest payment accepted")):
        refused = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": "electricity",
                                                     "amount": amount, "csrf_token": token})
        assert refused.status_code == 400 and reason in refused.get_data(as_text=True), amount
    foreign = tenant.post("/tenant/topup", data={"unit_id": other, "utility": "electricity",
                                                 "amount": "100", "csrf_token": token})
    assert foreign.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Payment)) is None
        db.session.remove()


def test_staff_assign_an_unmatched_payment_once(app, kit, login, committed):
    with committed() as s:
        s.add(Payment(provider="mpesa", provider_ref="ZZ11ZZ11ZZ", amount=Decimal("30"), currency="LSL",
                      status="unmatched", payer_phone="26650009999", reference="NOSUCH"))
    staff = login(kit.staff_email)
    page = staff.get("/staff/payments?status=unmatched").get_data(as_text=True)
    rows = table_with(page, "Provider ref").texts()
    assert [r[2] for r in rows] == ["ZZ11ZZ11ZZ"]
    token = csrf_from(page)
    with app.app_context():
        payment_id = db.session.scalar(select(Payment.id))
        db.session.remove()
    form = {"payment_id": payment_id, "unit_id": kit.unit_id, "utility": "electricity", "csrf_token": token}
    assert staff.post("/staff/payments/assign", data=form).status_code == 302
    assert staff.post("/staff/payments/assign", data=form).status_code == 302
    assert balance(app, kit.pocket_id) == Decimal("30.00")
    after = staff.get("/staff/payments?status=unmatched").get_data(as_text=True)
    assert "No payments match." in after


def test_staff_upload_a_statement_and_confirm(app, kit, login):
    staff = login(kit.staff_email)
    token = csrf_from(staff.get("/staff/payments").get_data(as_text=True))
    csv = (f"date,amount,reference,bank_ref\n2026-11-02,200.00,{kit.unit_number},B1\n"
           "2026-11-02,oops,X,B2\n").encode()
    report = staff.post("/staff/payments/eft/statement", data={
        "csrf_token": token, "statement": (io.BytesIO(csv), "statement.csv")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert table_with(report, "Line").texts() == [
        ["2", "Imported", f"matched to unit {kit.unit_number}"], ["3", "Refused", "'oops' is not a number"]]
    assert balance(app, kit.pocket_id) == 0
    with app.app_context():
        payment_id = db.session.scalar(select(Payment.id).where(Payment.provider_ref == "B1"))
        db.session.remove()
    staff.post("/staff/payments/eft/confirm", data={"csrf_token": token, "payment_id": payment_id})
    assert balance(app, kit.pocket_id) == Decimal("200.00")


def test_payment_pages_are_closed_to_other_roles(app, kit, login, committed):
    from tests.helpers import make_login
    with committed() as s:
        from tests import factories
        other = factories.make_estate_with_wallet(s)
        stranger = make_login(s, "tenant", unit=other.unit).email
        s.add(Payment(provider="eft", provider_ref="SEEN-BY-KIT", amount=Decimal("5"), currency="LSL",
                      status="credited", unit_id=kit.unit_id, estate_id=kit.estate_id, utility="water"))
    client = login(stranger)
    assert client.get("/staff/payments").status_code == 404
    assert "SEEN-BY-KIT" not in client.get("/tenant/payments").get_data(as_text=True)
    assert "No payments yet." in client.get("/tenant/payments").get_data(as_text=True)


def test_one_assign_flow_for_every_unmatched_payment(app, kit, login, committed):
    """SMS, EFT, Koios and ThunderCloud rows wait in one queue with one assign form; ours are
    credited through credit_payment, vendor ones recorded against the unit (paid at SparkMeter)."""
    from datetime import timedelta

    from app.models import AuditLog, LedgerTransaction, utcnow
    from app.models.sources import KoiosPayment, ThunderCloudPayment
    now = utcnow()
    with committed() as s:
        s.add(Payment(provider="eft", provider_ref="EFT-UN", amount=Decimal("70"), status="unmatched",
                      reference="WHO?", paid_at=now - timedelta(hours=3)))
        s.add(KoiosPayment(koios_id="kv-13", origin="vendor", customer_code="C-NOBODY", amount=Decimal("15"),
                           currency="LSL", paid_at=now - timedelta(hours=2)))
        s.add(ThunderCloudPayment(heartbeat_id="hb-9", previous_heartbeat_id="hb-8", meter_serial="SM-X",
                                  detected_at=now - timedelta(hours=1), amount=Decimal("12.50"), kwh=Decimal("5")))
    staff = login(kit.staff_email)
    page = staff.get("/staff/payments").get_data(as_text=True)
    queue = table_with(page, "Why unmatched").texts()
    assert [(row[1], row[2]) for row in queue] == [("ThunderCloud", "hb-9"), ("Koios", "kv-13"), ("EFT", "EFT-UN")]
    assert page.count("Assign (record only)") == 2 and page.count("Assign and credit") == 1
    token = csrf_from(page)
    with app.app_context():
        ids = {"koios": db.session.scalar(select(KoiosPayment.id)),
               "thundercloud": db.session.scalar(select(ThunderCloudPayment.id)),
               "payment": db.session.scalar(select(Payment.id))}
        db.session.remove()
    for source, row_id in ids.items():
        form = {"source": source, "payment_id": row_id, "unit_id": kit.unit_id, "utility": "electricity"}
        assert staff.post("/staff/payments/assign", data=form).status_code == 400  # no CSRF token
        assert staff.post("/staff/payments/assign", data={**form, "csrf_token": token}).status_code == 302
        assert staff.post("/staff/payments/assign", data={**form, "csrf_token": token}).status_code == 302
    assert balance(app, kit.pocket_id) == Decimal("70.00")  # only our own payment is credited
    with app.app_context():
        assert db.session.scalar(select(KoiosPayment.unit_id)) == kit.unit_id
        assert db.session.scalar(select(ThunderCloudPayment.unit_id)) == kit.unit_id
        assert db.session.scalars(select(LedgerTransaction.idempotency_key)).all() == ["eft:EFT-UN"]
        assigned = db.session.scalars(select(AuditLog.entity_type).where(AuditLog.action == "payment.assigned")
                                      .order_by(AuditLog.id)).all()
        assert assigned == ["KoiosPayment", "ThunderCloudPayment", "Payment"]  # once each
        db.session.remove()
    assert "Nothing waits for a unit." in staff.get("/staff/payments").get_data(as_text=True)


def test_assign_refuses_bad_input_with_4xx(app, kit, login):
    from hypothesis import HealthCheck, given, settings, strategies as st
    staff = login(kit.staff_email)
    token = csrf_from(staff.get("/staff/payments").get_data(as_text=True))
    text = st.one_of(st.text(max_size=12), st.integers(-5, 10**12).map(str))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(["payment", "koios", "thundercloud", "other", ""]), text, text, text)
    def post(source, payment_id, unit_id, utility):
        response = staff.post("/staff/payments/assign", data={
            "csrf_token": token, "source": source, "payment_id": payment_id, "unit_id": unit_id,
            "utility": utility})
        assert response.status_code in (302, 400, 404), response.status_code
    post()
    assert balance(app, kit.pocket_id) == 0


def test_topup_amounts_never_answer_5xx(app, kit, login):
    from hypothesis import HealthCheck, given, settings, strategies as st
    tenant = login(kit.tenant_email)
    token = csrf_from(tenant.get("/tenant/topup").get_data(as_text=True))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.text(max_size=16), st.decimals(allow_nan=True, allow_infinity=True).map(str)),
           st.sampled_from(["electricity", "solar", "", "gas"]))
    def post(amount, utility):
        response = tenant.post("/tenant/topup", data={"unit_id": kit.unit_id, "utility": utility,
                                                      "amount": amount, "csrf_token": token})
        assert response.status_code in (200, 400), (amount, response.status_code)
    post()


def test_staff_filter_payments_by_agent_and_api_providers(app, kit, login, committed):
    """Bulk top-ups (provider "agent") and API top-ups are offered by the filter and listed by label."""
    with committed() as s:
        s.add(Payment(provider="agent", provider_ref="bulk:1:1:electricity", amount=Decimal("30"), currency="LSL",
                      status="failed", reference="Bulk top-up 1"))
        s.add(Payment(provider="api", provider_ref="vendor-7", amount=Decimal("20"), currency="LSL", status="failed"))
    staff = login(kit.staff_email)
    page = staff.get("/staff/payments").get_data(as_text=True)
    assert '<option value="agent"' in page and '<option value="api"' in page
    rows = table_with(staff.get("/staff/payments?provider=agent").get_data(as_text=True), "Provider ref").texts()
    assert [(r[1], r[2]) for r in rows] == [("Agent", "bulk:1:1:electricity")]
