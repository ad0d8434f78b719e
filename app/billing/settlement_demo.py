"""Demo data for settlement and the daily reconciliation (issue 20), called once from app.demo.seed.

Sunbird shares electricity revenue: the utility 62.5 %, the body corporate a fixed R 2 500 a
month, the operator the remainder. Two months ago is settled (so the page shows a run and
party balances); last month is left for `flask settlement run --estate SUN --month <last month>`.
The last three days are reconciled for every estate so the dashboard has a history.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Estate
from app.periods import last_complete_period, previous_period


def seed(session: Session, seeded: dict | None = None) -> None:
    """Add Sunbird's parties and rules, settle two months ago, and reconcile the last three days."""
    from datetime import timedelta

    from app.analytics.daily_reconciliation import reconcile_estate, yesterday
    from app.billing import settlement as s

    sun = session.scalar(select(Estate).where(Estate.code == "SUN"))
    if sun is not None and not s.parties(session, sun.id):
        utility = s.add_party(session, sun, name="City Power (bulk electricity)", role="utility",
                              contact_email="bulk.accounts@citypower.example.test")
        body = s.add_party(session, sun, name="Sunbird Body Corporate", role="body_corporate",
                           contact_email="trustees@sunbird.example.test")
        operator = s.add_party(session, sun, name="Meterwise operator fee", role="operator",
                               contact_email="finance@meterwise.example.test")
        last = last_complete_period(sun.tz)
        first = previous_period(previous_period(last))
        s.save_rules(session, sun, "electricity", first, [
            s.RuleInput(utility.id, "percentage", "62.5"), s.RuleInput(body.id, "fixed", "2500"),
            s.RuleInput(operator.id, "remainder")])
        s.run_settlement(session, sun, previous_period(last))
    for estate in session.scalars(select(Estate).order_by(Estate.id)):
        day = yesterday(estate)
        for back in (2, 1, 0):
            reconcile_estate(session, estate, day - timedelta(days=back))
