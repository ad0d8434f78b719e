"""O1: the portfolio KPIs (app.analytics.portfolio) against hand-computed figures."""
from decimal import Decimal

from sqlalchemy import select

from app.analytics.portfolio import portfolio_figures
from app.auth.scope import unit_ids_query
from app.models import User


def test_kpis_equal_the_hand_computed_figures(app, landlord, committed):
    with committed() as s:
        owner = s.scalar(select(User).where(User.email == landlord.owner))
        figures = portfolio_figures(s, unit_ids_query(owner, ("owner",)))
    assert figures.units == 3
    assert figures.by_status == {"occupied": 1, "vacant": 1, "maintenance": 1}
    assert figures.vacancy_percent == Decimal("33.3")
    balances = {(q.utility, q.commodity): q.amount for q in figures.balances}
    # P1: 300 - 20 - 5.50 + 70 - 40 - 60 + 40 (reversal) = 284.50; P2: 80; P3: 0.
    assert balances[("electricity", "KES")] == Decimal("364.50")
    assert balances[("water", "KES")] == Decimal("50")
    assert {(q.utility, q.amount, q.commodity) for q in figures.consumption} == {
        ("electricity", Decimal("14.75"), "KWH"), ("water", Decimal("2"), "KL")}
    assert figures.solar_generated == Decimal("6")
    # This month: 20 + 5.50 charged, 40 of last month's charge reversed; 300 + 50 paid in.
    assert [(q.amount, q.commodity) for q in figures.billed] == [(Decimal("-14.50"), "KES")]
    assert [(q.amount, q.commodity) for q in figures.collected] == [(Decimal("350"), "KES")]
