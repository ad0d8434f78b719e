"""O3: use per unit from roll-ups, top consumers, solar generation vs use (app.analytics.usage_analytics)."""
from decimal import Decimal

from sqlalchemy import select

from app.analytics.usage_analytics import usage_report
from app.auth.scope import unit_ids_query
from app.models import User
from tests.owner.conftest import local_month


def report_for(committed, email, utility="electricity", offset=0):
    with committed() as s:
        owner = s.scalar(select(User).where(User.email == email))
        return usage_report(s, unit_ids_query(owner, ("owner",)), utility, *local_month(offset))


def test_use_per_unit_and_top_consumers_in_order(landlord, committed):
    report = report_for(committed, landlord.owner)
    used = {u.number: (u.used, u.previous) for u in report.units}
    # P1's 99 kWh read exactly at local midnight on the 1st belongs to last month.
    assert used == {"P1": (Decimal("10.5"), Decimal("99")), "P2": (Decimal("4.25"), Decimal("3")),
                    "P3": (Decimal(0), None)}
    assert [u.number for u in report.top] == ["P1", "P2"], "biggest first; silent meters are not consumers"
    assert report.total == Decimal("14.75")
    assert report.days[0].used == Decimal("4.5") and report.days[1].used == Decimal("10.25")
    last = report_for(committed, landlord.owner, offset=-1)
    assert [u.number for u in last.top] == ["P1", "P2"] and last.total == Decimal("102")


def test_solar_generation_vs_grid_use(landlord, committed):
    report = report_for(committed, landlord.owner)
    assert report.has_solar
    assert (report.solar_total, report.grid_total) == (Decimal(6), Decimal("14.75"))
    assert report.solar_share_percent == Decimal("28.9")  # 6 / (6 + 14.75)
    assert report.days[0].solar == Decimal(6) and report.days[0].grid == Decimal("4.5")
    water = report_for(committed, landlord.owner, utility="water")
    assert [u.number for u in water.top] == ["P1"] and water.total == Decimal(2)
    assert water.grid_total == Decimal("14.75"), "solar is compared with electricity whatever the utility"
