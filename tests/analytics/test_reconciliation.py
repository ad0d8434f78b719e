"""O2: billed vs collected per utility and month (app.analytics.reconciliation), reversals, and
the pocket roll-up folds it reads."""
from decimal import Decimal

from sqlalchemy import select

from app.analytics.reconciliation import reconcile
from app.auth.scope import unit_ids_query
from app.models import User
from tests.owner.conftest import period


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


def test_the_pocket_roll_up_folds_new_entries_once(landlord, committed):
    from app.ledger.accounts import open_wallet
    from app.ledger.pocket_flows import fold
    from app.models import Unit
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
