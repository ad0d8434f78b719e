"""Operator finance (U5): ARPU with cumulative distinct paying accounts and tenure, on hand-worked examples."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.analytics.operator_finance import PaymentEvent, arpu_rows, tenure_bucket, tenure_rows
from app.models.payments import Payment
from tests import factories
from tests.helpers import make_login, table_with

# Three sites; accounts pay in some months only.
EVENTS = [
    PaymentEvent(1, 11, date(2026, 1, 5), Decimal(100)), PaymentEvent(1, 12, date(2026, 2, 9), Decimal(50)),
    PaymentEvent(1, 11, date(2026, 4, 2), Decimal(30)),
    PaymentEvent(2, 21, date(2026, 2, 1), Decimal(60)), PaymentEvent(2, 22, date(2026, 2, 28), Decimal(40)),
    PaymentEvent(3, 31, date(2026, 3, 31), Decimal(90)),
]
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]


def test_arpu_divides_by_every_account_that_has_ever_paid():
    got = {(r.estate_id, r.period): (r.revenue, r.cumulative_accounts, r.arpu) for r in arpu_rows(EVENTS, "month", MONTHS)}
    assert got[(1, "2026-01")] == (Decimal(100), 1, Decimal("100.00"))
    assert got[(1, "2026-02")] == (Decimal(50), 2, Decimal("25.00"))
    assert got[(1, "2026-03")] == (Decimal(0), 2, Decimal("0.00"))  # nobody paid; both still count
    assert got[(1, "2026-04")] == (Decimal(30), 2, Decimal("15.00"))
    assert got[(2, "2026-02")] == (Decimal(100), 2, Decimal("50.00")) and got[(2, "2026-04")][1:] == (2, Decimal("0.00"))
    assert got[(3, "2026-01")] == (Decimal(0), 0, None) and got[(3, "2026-03")][2] == Decimal("90.00")
    quarters = {(r.estate_id, r.period): r.arpu for r in arpu_rows(EVENTS, "quarter")}
    assert quarters == {(1, "2026-Q1"): Decimal("75.00"), (1, "2026-Q2"): Decimal("15.00"),
                        (2, "2026-Q1"): Decimal("50.00"), (3, "2026-Q1"): Decimal("90.00")}


def test_an_earlier_payment_outside_the_window_still_counts_the_account():
    rows = arpu_rows(EVENTS, "month", ["2026-03"])
    assert [(r.estate_id, r.cumulative_accounts) for r in rows] == [(1, 2), (2, 2), (3, 1)]


def test_tenure_buckets_count_months_since_the_first_payment():
    first = {11: (1, date(2026, 1, 15))}
    usage = [(11, date(2025, 12, 1), Decimal(99)),  # before the account existed: not counted
             (11, date(2026, 1, 1), Decimal(10)), (11, date(2026, 3, 1), Decimal(20)),
             (11, date(2026, 4, 1), Decimal(30)), (11, date(2027, 1, 1), Decimal(5)), (99, date(2026, 1, 1), Decimal(7))]
    got = [(r.bucket, r.account_months, r.consumption, r.average) for r in tenure_rows(first, usage)]
    assert got == [("0-2 months", 2, Decimal(30), Decimal("15.00")), ("3-5 months", 1, Decimal(30), Decimal("30.00")),
                   ("12 months or more", 1, Decimal(5), Decimal("5.00"))]
    assert [tenure_bucket(m) for m in (0, 2, 3, 5, 6, 11, 12, 40)] == [
        "0-2 months", "0-2 months", "3-5 months", "3-5 months", "6-11 months", "6-11 months",
        "12 months or more", "12 months or more"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 6), st.dates(date(2025, 1, 1), date(2026, 12, 31)),
                          st.decimals(0, 10000, places=2)), max_size=40))
def test_cumulative_accounts_never_fall_and_revenue_adds_up(raw):
    events = [PaymentEvent(e, e * 10 + u, d, a) for e, u, d, a in raw]
    rows = arpu_rows(events, "month")
    for estate in {e.estate_id for e in events}:
        mine = [r for r in rows if r.estate_id == estate]
        counts = [r.cumulative_accounts for r in mine]
        assert counts == sorted(counts) and counts[-1] == len({e.unit_id for e in events if e.estate_id == estate})
        assert sum(r.revenue for r in mine) == sum(e.amount for e in events if e.estate_id == estate)


def test_the_finance_page_shows_arpu_from_payments(committed, login):
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Finance Flats")
        paid = datetime.now(UTC)
        s.add(Payment(provider="eft", amount=Decimal("120.00"), currency="ZAR", status="credited",
                      estate_id=kit.estate.id, unit_id=kit.unit.id, paid_at=paid))
        estate_id, email = kit.estate.id, make_login(s, "utility", estate=kit.estate).email
    client = login(email)
    page = client.get(f"/utility/estates/{estate_id}/finance")
    assert page.status_code == 200
    table = table_with(page.get_data(as_text=True), "Cumulative accounts")
    assert table.texts()[0][3] == "1" and "120.00" in table.texts()[0][4]
    for name in ("months", "quarters", "estates", "tenure"):
        assert client.get(f"/utility/estates/{estate_id}/finance?format=pdf&table={name}").data.startswith(b"%PDF")


def _pdf_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader

    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_imported_koios_and_thundercloud_payments_count_and_the_whole_report_has_every_figure(committed, login):
    """A mini-grid's Koios payment (not a mirror of ours) and a ThunderCloud top-up are payments
    like ours; the whole report is one PDF with each figure's heading and figures, and the full
    revenue table stacks every visible estate in the currency, by quarter."""
    from app.models.sources import KoiosPayment, ThunderCloudPayment

    with committed() as s:
        grid = factories.make_estate_with_wallet(s, name="Hill Grid")
        second = factories.make_unit(s, grid.estate, number="H2")
        third = factories.make_unit(s, grid.estate, number="H3")
        other = factories.make_estate_with_wallet(s, name="Valley Grid")
        now = datetime.now(UTC)
        ours = Payment(provider="eft", provider_ref="FIN-1", amount=Decimal("100.00"), currency="ZAR",
                       status="credited", estate_id=grid.estate.id, unit_id=grid.unit.id, paid_at=now)
        s.add(ours)
        s.flush()
        s.add_all([
            KoiosPayment(koios_id="k-1", origin="koios", amount=Decimal("30.00"), paid_at=now,
                         estate_id=grid.estate.id, unit_id=second.id),
            # The mirror of our own push to Koios is already counted as our payment.
            KoiosPayment(koios_id="k-2", origin="ours", amount=Decimal("100.00"), paid_at=now,
                         estate_id=grid.estate.id, unit_id=grid.unit.id, payment_id=ours.id),
            ThunderCloudPayment(heartbeat_id="hb-2", previous_heartbeat_id="hb-1", meter_serial="TC-1",
                                detected_at=now, amount=Decimal("20.00"), kwh=Decimal("4"), unit_id=third.id),
            Payment(provider="eft", provider_ref="FIN-2", amount=Decimal("55.00"), currency="ZAR",
                    status="credited", estate_id=other.estate.id, unit_id=other.unit.id, paid_at=now),
        ])
        email = make_login(s, "utility", estate=grid.estate, grants=[("utility", other.estate)]).email
        grid_id = grid.estate.id
    client = login(email)
    page = client.get(f"/utility/estates/{grid_id}/finance")
    month = table_with(page.get_data(as_text=True), "Paying in period").texts()[0]
    assert month[2:4] == ["3", "3"] and "150.00" in month[1] and "50.00" in month[4]  # 150 over 3 accounts
    revenue = table_with(page.get_data(as_text=True), "Total").texts()
    assert [r[0] for r in revenue] == ["Hill Grid", "Valley Grid"] and "150.00" in revenue[0][-1]
    assert "55.00" in revenue[1][-1]
    assert b"table=report" in page.data
    report = client.get(f"/utility/estates/{grid_id}/finance?table=report&format=pdf")
    assert report.status_code == 200 and report.data.startswith(b"%PDF")
    assert 'filename="hill-grid-operator-finance.pdf"' in report.headers["Content-Disposition"]
    text = _pdf_text(report.data)
    for heading in ("ARPU by month", "Revenue and ARPU by quarter", "Revenue per estate by quarter",
                    "ARPU by estate", "Consumption by tenure", "Valley Grid", "150.00", "50.00"):
        assert heading in text, heading
    csv = client.get(f"/utility/estates/{grid_id}/finance?table=revenue&format=csv").get_data(as_text=True)
    assert csv.splitlines()[0].startswith("\ufeffEstate,") and "Hill Grid" in csv and "150.00" in csv
    assert client.get(f"/utility/estates/{grid_id}/finance?table=report&format=csv").status_code == 400
    assert client.get(f"/utility/estates/{grid_id}/finance?table=nope&format=pdf").status_code == 400


def test_uisp_payments_count_for_the_unit_their_client_names_once(committed):
    """Hand-worked: UISP clients of the estate name units by account number (A1) or unit number
    (A2); a UISP payment that is the same money as our credited payment BANK-7 is left out, as are
    another currency, a payment removed in UISP, a client naming no unit and another estate's client.
    A1 paid 100 (ours) + 40 (UISP); A2 25 (UISP), on 1 April local (31 March 23:30 UTC)."""
    from app.analytics.operator_finance import payment_events
    from app.models import Estate
    from app.models.sources import UispClient, UispPayment

    with committed() as s:
        estate = factories.make_estate(s, name="Uisp Court", timezone="Africa/Johannesburg")
        other = factories.make_estate(s, name="Elsewhere")
        a1, a2 = factories.make_unit(s, estate, number="A1"), factories.make_unit(s, estate, number="A2")
        factories.make_unit(s, estate, number="A3")
        a1.account_number = f"{estate.id:04d}UC"
        late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
        s.add(Payment(provider="eft", provider_ref=f"BANK-{estate.id}", amount=Decimal("100.00"), currency="ZAR",
                      status="credited", estate_id=estate.id, unit_id=a1.id, paid_at=late))
        base = estate.id * 100
        for n, (home, ident) in enumerate([(estate, a1.account_number.lower()), (estate, " a2 "),
                                           (estate, "C00003"), (other, "A2")], start=1):
            s.add(UispClient(uisp_id=base + n, estate_id=home.id, user_ident=ident, name=f"Client {n}",
                             is_active=True, is_archived=False, is_vip=False, account_balance=0,
                             account_outstanding=0, has_suspended_service=False, on_time_count=0, late_count=0,
                             missed_count=0, risky=False))
        s.flush()
        for n, (client, amount, currency, provider_id, removed) in enumerate([
                (1, "40.00", "ZAR", None, None), (1, "100.00", "ZAR", f"BANK-{estate.id}", None),
                (2, "25.00", "ZAR", "PF-1", None), (2, "99.00", "USD", None, None), (2, "10.00", "ZAR", None, late),
                (3, "70.00", "ZAR", None, None), (4, "60.00", "ZAR", None, None)], start=1):
            s.add(UispPayment(uisp_id=base + n, client_uisp_id=base + client, amount=Decimal(amount), currency=currency,
                              created_at=late, provider_payment_id=provider_id, covers=[], removed_at=removed))
        estate_id, units = estate.id, {a1.id: "A1", a2.id: "A2"}
    with committed() as s:
        events = payment_events(s, s.get(Estate, estate_id))
    got = sorted((units[e.unit_id], e.day, e.amount) for e in events)
    assert got == [("A1", date(2026, 4, 1), Decimal("40.00")), ("A1", date(2026, 4, 1), Decimal("100.00")),
                   ("A2", date(2026, 4, 1), Decimal("25.00"))]
    [april] = arpu_rows(events, "month", ["2026-04"])
    assert (april.revenue, april.paying, april.cumulative_accounts, april.arpu) == (
        Decimal("165.00"), 2, 2, Decimal("82.50"))
