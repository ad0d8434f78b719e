"""O3: use per unit from roll-ups, top consumers, solar generation vs use."""
from decimal import Decimal

from sqlalchemy import select

from app.auth.scope import unit_ids_query
from app.models import User
from app.reports.usage_analytics import usage_report
from tests.owner.conftest import local_month, period
from tests.helpers import table_with
from tests.web.test_pages import body


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


def test_usage_page_tables_and_scope(landlord, login):
    client = login(landlord.owner)
    response = client.get(f"/owner/usage?utility=electricity&month={period(0)}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    top = table_with(html, "#")
    assert [row[1] for row in top.texts()] == ["P1", "P2"]
    assert "28.9 %" in body(response) and "6.000 kWh" in html
    assert 'data-chart="chart-daily"' in html and 'data-chart="chart-solar"' in html
    per_unit = table_with(html, "Previous month")
    assert [row[0] for row in per_unit.texts()] == ["P1", "P2", "P3"]
    text = body(response)  # CSRF tokens blanked: a random token may contain "P4"
    assert "P4" not in text and "1\u202f000" not in text and "500.000" not in text
    csv = client.get(f"/owner/usage?utility=electricity&month={period(0)}&format=csv").get_data(as_text=True)
    assert "P1,Protea Park,occupied,10.5" in csv and "P4" not in csv
    for bad in ("utility=gas", "month=2026-13", "month=march"):
        assert client.get(f"/owner/usage?{bad}").status_code == 400, bad
