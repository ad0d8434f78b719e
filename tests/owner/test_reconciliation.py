"""O2: billed vs collected per utility and month, reversals, highlighted differences, export."""
from decimal import Decimal

from sqlalchemy import select

from app.auth.scope import unit_ids_query
from app.models import User
from app.reports.reconciliation import reconcile
from tests.owner.conftest import period
from tests.helpers import tables_of
from tests.web.test_pages import body


def test_billed_and_collected_per_month_with_a_reversal(landlord, committed):
    with committed() as s:
        owner = s.scalar(select(User).where(User.email == landlord.owner))
        report = reconcile(s, unit_ids_query(owner, ("owner",)), period(0), 3)
    assert report.periods == [period(-2), period(-1), period(0)]
    by_utility = {u.utility: u for u in report.utilities}
    assert set(by_utility) == {"electricity", "water"}, "P4 and Q1 belong to other owners"
    months = {line.period: (line.billed, line.collected, line.difference, line.flagged)
              for line in by_utility["electricity"].months}
    assert months[period(-2)] == (Decimal(0), Decimal(80), Decimal(80), False), "a surplus is not flagged"
    # Last month: 40 + 60 charged, 70 paid in: a 30 shortfall.
    assert months[period(-1)] == (Decimal(100), Decimal(70), Decimal(-30), True)
    # This month: 20 + 5.50 standing charge, and last month's 40 reversed.
    assert months[period(0)] == (Decimal("-14.50"), Decimal(300), Decimal("314.50"), False)
    total = by_utility["electricity"].total
    assert (total.billed, total.collected, total.difference) == (Decimal("85.50"), Decimal(450), Decimal("364.50"))
    water = {line.period: (line.billed, line.collected) for line in by_utility["water"].months}
    assert water[period(0)] == (Decimal(0), Decimal(50)) and water[period(-1)] == (Decimal(0), Decimal(0))


def test_the_page_highlights_shortfalls_and_totals(landlord, login):
    response = login(landlord.owner).get("/owner/reconciliation?months=3")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    electricity = tables_of(html)[0]  # utilities in the usual order: electricity first
    rows = {row[0].text.split()[0]: row for row in electricity.rows}
    shortfall = rows[period(-1)][3]
    assert shortfall.text == "KSh -30.00" and "negative" in shortfall.classes
    assert "positive" in rows[period(-2)][3].classes
    assert rows["Total"][1].text == "KSh 85.50" and rows["Total"][3].text == "KSh 364.50"
    assert html.count('class="flagged"') == 1 and "check" in body(response)
    assert "KSh 999.00" not in html and "KSh 111.00" not in html


def test_export_and_bad_input(landlord, login):
    client = login(landlord.owner)
    csv = client.get("/owner/reconciliation?months=3&format=csv").get_data(as_text=True)
    assert f"{period(-1)},Electricity,100.00,KES,70.00,KES,-30.00,KES,yes" in csv
    assert "Total,Electricity,85.50,KES,450.00,KES,364.50,KES,\r\n" in csv
    assert client.get("/owner/reconciliation?months=3&format=pdf").mimetype == "application/pdf"
    for bad in ("months=0", "months=37", "months=x", "format=xls"):
        assert client.get(f"/owner/reconciliation?{bad}").status_code == 400, bad


def test_the_pocket_roll_up_folds_new_entries_once(landlord, committed):
    from app.ledger.accounts import open_wallet
    from app.models import Unit
    from app.reports.pocket_flows import fold
    from tests.owner.conftest import at, charge

    def this_month_electricity():
        with committed() as s:
            owner = s.scalar(select(User).where(User.email == landlord.owner))
            report = reconcile(s, unit_ids_query(owner, ("owner",)), period(0), 1)
            return next(u for u in report.utilities if u.utility == "electricity").months[0].billed

    assert this_month_electricity() == Decimal("-14.50")
    with committed() as s:
        assert fold(s, [landlord.estate]) == 0, "nothing new since the last read"
        pocket = open_wallet(s, s.get(Unit, landlord.units["P3"])).pocket("electricity")
        from app.models import Account
        revenue = s.scalar(select(Account).where(Account.estate_id == landlord.estate,
                                                 Account.code == "revenue:electricity"))
        charge(s, pocket, revenue, "7.25", at(0, 1, 15))
    with committed() as s:
        assert fold(s, [landlord.estate]) == 1
        assert fold(s, [landlord.estate]) == 0
    assert this_month_electricity() == Decimal("-7.25")


def test_the_scheduled_job_folds_every_estate(landlord, app, committed):
    from app.jobs import enqueue
    from app.models.reporting import PocketFlowTotal, PocketFlowWatermark

    with app.app_context():
        run = enqueue("pocket_flows")
        assert run.status == "done" and "folded" in run.result, run.result
    with committed() as s:
        marks = dict(s.execute(select(PocketFlowWatermark.estate_id, PocketFlowWatermark.last_seq)).all())
        assert set(marks) == {landlord.estate, landlord.other_estate}
        assert s.scalar(select(PocketFlowTotal.amount).where(PocketFlowTotal.kind == "reversal")) is None, \
            "a reversal is rolled up under the kind it reverses"
