"""My payments, receipts, and a tenant's view of a unit limited to their own tenancy (T3, P6)."""
from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from sqlalchemy import select

from app.models import (
    Account, KoiosPayment, LedgerTransaction, Tenancy, ThunderCloudHeartbeat, ThunderCloudPayment, Unit, User,
)
from app.models.payments import Payment
from app.payments.credit import credit_payment
from tests import factories
from tests.helpers import make_login, table_with

JOBURG = ZoneInfo("Africa/Johannesburg")


@pytest.fixture
def handover(home, committed):
    """Ayanda moved out of P1 on 1 Oct 2026 and Bongani moved in that day and topped up R 80."""
    with committed() as s:
        s.scalar(select(Tenancy).where(Tenancy.unit_id == home.unit)).move_out = date(2026, 10, 1)
        bongani = make_login(s, "tenant", unit=s.get(Unit, home.unit), full_name="Bongani Zulu")
        s.add(Tenancy(unit_id=home.unit, person_id=bongani.person_id, move_in=date(2026, 10, 1)))
        factories.make_topup(s, s.get(Account, home.pocket), "80.00", clearing=s.get(Account, home.clearing),
                             memo="Bongani top-up", occurred_at=datetime(2026, 10, 5, 9, tzinfo=JOBURG))
        staff = make_login(s, "staff")
        ayanda_tx = s.scalar(select(LedgerTransaction.id).where(LedgerTransaction.memo == "PayFast top-up"))
        bongani_tx = s.scalar(select(LedgerTransaction.id).where(LedgerTransaction.memo == "Bongani top-up"))
        return {"new": bongani.email, "staff": staff.email, "old_tx": ayanda_tx, "new_tx": bongani_tx}


def test_a_new_tenant_sees_nothing_of_the_previous_tenancy(home, handover, login):
    client = login(handover["new"])
    history = client.get(f"/tenant/units/{home.unit}/transactions").get_data(as_text=True)
    assert "Bongani top-up" in history and "PayFast top-up" not in history and "EFT" not in history
    assert client.get(f"/tenant/units/{home.unit}/transactions/{handover['old_tx']}").status_code == 404
    detail = client.get(f"/tenant/units/{home.unit}/transactions/{handover['new_tx']}")
    assert detail.status_code == 200 and f"/tenant/payments/T{handover['new_tx']}" in detail.get_data(as_text=True)
    for fmt in ("csv", "pdf"):
        export = client.get(f"/tenant/units/{home.unit}/transactions?format={fmt}")
        text = export.get_data(as_text=True) if fmt == "csv" else _pdf_text(export.data)
        assert "Bongani top-up" in text and "PayFast top-up" not in text, fmt
    dashboard = client.get(f"/tenant/units/{home.unit}").get_data(as_text=True)
    assert "PayFast top-up" not in dashboard
    payments = client.get("/tenant/payments").get_data(as_text=True)
    assert "R 80.00" in payments and "R 500.00" not in payments
    assert client.get(f"/tenant/payments/T{handover['old_tx']}").status_code == 404
    # Monthly statements: only the months the tenancy touches (September was Ayanda's alone).
    statements = client.get(f"/tenant/units/{home.unit}/statements").get_data(as_text=True)
    assert "/statements/2026-10.pdf" in statements and "/statements/2026-09.pdf" not in statements
    assert client.get(f"/tenant/units/{home.unit}/statements/2026-09.pdf").status_code == 404
    assert client.get(f"/tenant/units/{home.unit}/statements/2026-10.pdf").status_code == 200


def test_the_previous_tenant_keeps_their_own_months_and_staff_see_all(home, handover, login):
    ayanda = login(home.tenant)
    history = ayanda.get(f"/tenant/units/{home.unit}/transactions").get_data(as_text=True)
    assert "PayFast top-up" in history and "Bongani top-up" not in history
    assert ayanda.get(f"/tenant/units/{home.unit}/transactions/{handover['new_tx']}").status_code == 404
    assert ayanda.get(f"/tenant/units/{home.unit}/statements/2026-09.pdf").status_code == 200
    staff = login(handover["staff"])
    for tx in (handover["old_tx"], handover["new_tx"]):
        assert staff.get(f"/tenant/units/{home.unit}/transactions/{tx}").status_code == 200


def test_an_owner_of_the_unit_sees_the_whole_history(home, handover, login, committed):
    with committed() as s:
        owner = make_login(s, "owner", unit=s.get(Unit, home.unit)).email
    text = login(owner).get(f"/owner/units/{home.unit}/transactions?format=csv").get_data(as_text=True)
    assert "PayFast top-up" in text and "Bongani top-up" in text


@pytest.fixture
def paid(home, committed):
    """Besides the fixture's two top-ups: an M-PESA payment credited, a Koios and a ThunderCloud
    payment recorded for the unit, Ayanda's own PayFast checkout waiting and someone else's."""
    with committed() as s:
        mpesa = Payment(provider="mpesa", provider_ref="QK7H2X9", reference="P1", unit_id=home.unit,
                        utility="electricity", amount=Decimal("150.00"), currency="ZAR", status="unmatched",
                        payer_name="Ayanda D", payer_phone="+27825550101",
                        paid_at=datetime(2026, 11, 3, 20, 3, tzinfo=UTC))
        s.add(mpesa)
        s.flush()
        credit_payment(s, mpesa)
        s.add(KoiosPayment(koios_id="kp-77", origin="vendor", customer_code="P1", amount=Decimal("40.00"),
                           currency="ZAR", paid_at=datetime(2026, 11, 4, 7, tzinfo=UTC), memo="cash agent 12",
                           estate_id=home.estate, unit_id=home.unit, meter_serial="E-1"))
        s.add(ThunderCloudHeartbeat(heartbeat_id="hb-2", meter_serial="E-1", taken_at=datetime(2026, 11, 5, 6, tzinfo=UTC),
                                    credit_balance=Decimal("61.50")))
        s.add(ThunderCloudPayment(heartbeat_id="hb-2", previous_heartbeat_id="hb-1", meter_serial="E-1",
                                  detected_at=datetime(2026, 11, 5, 6, tzinfo=UTC), amount=Decimal("25.00"),
                                  kwh=Decimal("12.5"), unit_id=home.unit))
        other = make_login(s, "staff")
        s.add(Payment(provider="payfast", checkout_id="co-mine", unit_id=home.unit, utility="water",
                      amount=Decimal("33.00"), currency="ZAR", status="pending", created_by_user_id=home.tenant_id,
                      created_at=datetime(2026, 11, 6, 8, tzinfo=UTC)))
        s.add(Payment(provider="payfast", checkout_id="co-theirs", unit_id=home.unit, utility="water",
                      amount=Decimal("44.00"), currency="ZAR", status="pending", created_by_user_id=other.id,
                      created_at=datetime(2026, 11, 6, 9, tzinfo=UTC)))
        return {"mpesa_tx": mpesa.transaction_id,
                "koios": s.scalar(select(KoiosPayment.id).where(KoiosPayment.koios_id == "kp-77")),
                "thundercloud": s.scalar(select(ThunderCloudPayment.id).where(ThunderCloudPayment.heartbeat_id == "hb-2"))}


def test_my_payments_lists_every_payment_whatever_its_provider(home, paid, login):
    client = login(home.tenant)
    response = client.get("/tenant/payments")
    rows = [r[1:] for r in table_with(response.get_data(as_text=True), "Method").texts() if len(r) >= 8]
    seen = [(r[2], r[5], r[6]) for r in rows]
    # The PayFast checkout left unpaid since 6 November has expired: hidden unless asked for.
    assert seen == [
        ("SparkMeter (ThunderCloud)", "R 25.00", "recorded at SparkMeter"),
        ("SparkMeter (Koios)", "R 40.00", "recorded at SparkMeter"),
        ("M-PESA", "R 150.00", "received"),
        ("Payment", "R 300.00", "received"),
        ("Payment", "R 500.00", "received"),
    ], seen
    # The M-PESA payment's time is local: 20:03 UTC is 22:03 in Johannesburg.
    assert rows[2][0] == "03 Nov 2026 22:03" and rows[2][3] == "P1"
    assert "Show 1 expired checkout" in response.get_data(as_text=True)
    shown = client.get("/tenant/payments?expired=1").get_data(as_text=True)
    rows = [r[1:] for r in table_with(shown, "Method").texts() if len(r) >= 8]
    assert (rows[0][2], rows[0][5], rows[0][6]) == ("PayFast", "R 33.00", "expired (not paid)")


def test_a_receipt_shows_number_method_reference_amount_and_new_balance(home, paid, login):
    client = login(home.tenant)
    number = f"T{paid['mpesa_tx']}"
    page = client.get(f"/tenant/payments/{number}").get_data(as_text=True)
    for expected in (number, "M-PESA", "P1", "R 150.00", "R 650.00", "03 Nov 2026 22:03", "Ayanda D"):
        assert expected in page, expected
    pdf = client.get(f"/tenant/payments/{number}?format=pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = _pdf_text(pdf.data)
    for expected in (number, "M-PESA", "P1", "R 150.00", "R 650.00", "22:03"):
        assert expected in text, expected
    thundercloud = client.get(f"/tenant/payments/C{paid['thundercloud']}").get_data(as_text=True)
    assert "R 25.00" in thundercloud and "R 61.50" in thundercloud
    assert "cash agent 12" in client.get(f"/tenant/payments/K{paid['koios']}").get_data(as_text=True)


@pytest.mark.parametrize("number", ["T987654321", "K999999", "X1", "T", "t1", "C" + "9" * 13, "%00"])
def test_unknown_or_malformed_receipt_numbers_are_404(home, login, number):
    assert login(home.tenant).get(f"/tenant/payments/{number}").status_code == 404


def test_another_units_receipt_is_404(home, paid, login, committed):
    with committed() as s:
        neighbour = make_login(s, "tenant", unit=factories.make_unit(s, s.get(Unit, home.unit).estate)).email
    client = login(neighbour)
    assert client.get(f"/tenant/payments/T{paid['mpesa_tx']}").status_code == 404
    assert client.get(f"/tenant/payments/K{paid['koios']}").status_code == 404
    assert "No payments yet" in client.get("/tenant/payments").get_data(as_text=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.text(min_size=1, max_size=24))
def test_any_receipt_number_is_answered_without_a_server_error(home, login, number):
    client = _client_once(login, home.tenant)
    response = client.get("/tenant/payments/" + quote(number, safe=""))
    assert response.status_code in (200, 404, 308), (number, response.status_code)


_clients: dict = {}


def _client_once(login, email):
    """One signed-in client for all of hypothesis' examples (signing in is rate limited)."""
    key = (id(login), email)
    if key not in _clients:
        _clients.clear()
        _clients[key] = login(email)
    return _clients[key]


def test_a_top_up_shared_with_another_unit_shows_each_tenant_their_share(home, login, committed):
    from app.ledger import Entry, post

    with committed() as s:
        unit = s.get(Unit, home.unit)
        sibling = factories.make_unit(s, unit.estate, number="P2")
        pocket = factories.make_wallet(s, sibling).pocket("electricity")
        brother = make_login(s, "tenant", unit=sibling).email
        s.add(Tenancy(unit_id=sibling.id, person_id=s.scalar(select(User.person_id).where(User.email == brother)),
                      move_in=date(2026, 1, 1)))
        post(s, Entry(estate_id=unit.estate_id, kind="topup", idempotency_key="test:family:1",
                      legs=[(home.clearing, Decimal("-100.00")), (home.pocket, Decimal("60.00")),
                            (pocket.id, Decimal("40.00"))],
                      occurred_at=datetime(2026, 11, 2, 9, tzinfo=UTC), memo="Family top-up"))
        number = unit.number
    mine = table_with(login(home.tenant).get("/tenant/payments").get_data(as_text=True), "Method").texts()
    theirs = table_with(login(brother).get("/tenant/payments").get_data(as_text=True), "Method").texts()
    assert [r[2] for r in mine if "R 60.00" in r] == [number] and not any("R 100.00" in r for r in mine)
    assert [r[2] for r in theirs if len(r) > 5] == ["P2"] and any("R 40.00" in r for r in theirs)


def _pdf_text(data: bytes) -> str:
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))
