"""T1 dashboard and T2 usage charts: figures from the roll-ups and the ledger, weeks in local time, CSV."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.metering import rollups
from app.models import Account, Meter, Reading
from app.models.metering import ConsumptionRollup, TariffVersion
from app.money import format_amount
from app.reports.usage import days_of_credit, local_midnight, period_starts, usage_series
from tests import factories
from tests.tenant.conftest import feed, reading, register_series
from tests.helpers import make_login

JOBURG = ZoneInfo("Africa/Johannesburg")


def pocket_block(page: str, utility: str) -> str:
    """The dashboard card of one pocket, entities decoded."""
    text = html.unescape(page)
    start = text.index(f'id="pocket-{utility}"')
    return text[start:text.index("</article>", start)]


def figure(block: str, label: str) -> str:
    found = re.search(rf"<dt>{label}</dt><dd[^>]*>(.*?)</dd>", block, re.S)
    assert found, label
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def feed_recent_use(committed, serial: str, days: int = 16, per_six_hours: str = "1.5") -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    points = register_series(now - timedelta(days=days), days * 24, 6, Decimal(per_six_hours))
    feed(committed, [reading(serial, at, str(register)) for at, register in points])


def day_rollups(s, meter_id: int, first: date, end: date) -> Decimal:
    return s.scalar(select(func.coalesce(func.sum(ConsumptionRollup.consumption), 0)).where(
        ConsumptionRollup.meter_id == meter_id, ConsumptionRollup.grain == "day",
        ConsumptionRollup.period_start >= local_midnight(first, JOBURG),
        ConsumptionRollup.period_start < local_midnight(end, JOBURG)))


def test_dashboard_shows_what_the_rollups_and_the_ledger_say(home, login, committed):
    feed_recent_use(committed, "E-1")
    response = login(home.tenant).get(f"/tenant/units/{home.unit}")
    assert response.status_code == 200
    block = pocket_block(response.get_data(as_text=True), "electricity")
    today = datetime.now(UTC).astimezone(JOBURG).date()
    with committed() as s:
        balance = s.get(Account, home.pocket).balance
        today_use = day_rollups(s, home.electricity_meter, today, today + timedelta(days=1))
        history = day_rollups(s, home.electricity_meter, today - timedelta(days=14), today)
        since = datetime.now(UTC).astimezone(JOBURG).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        recent = s.scalar(select(func.coalesce(func.sum(ConsumptionRollup.consumption), 0)).where(
            ConsumptionRollup.meter_id == home.electricity_meter, ConsumptionRollup.grain == "hour",
            ConsumptionRollup.period_start >= since))
        month = s.scalar(select(ConsumptionRollup.consumption).where(
            ConsumptionRollup.meter_id == home.electricity_meter, ConsumptionRollup.grain == "month",
            ConsumptionRollup.period_start == local_midnight(today.replace(day=1), JOBURG)))
    assert balance < Decimal("500"), "the readings were billed"
    assert format_amount(balance, "ZAR") in block
    assert figure(block, "Today") == format_amount(today_use, "KWH")
    assert figure(block, "This month") == format_amount(month, "KWH")
    assert figure(block, f"Since {since:%H:%M}") == format_amount(recent, "KWH")
    daily_cost = history / 14 * Decimal("2.00")
    expected_days = (balance / daily_cost).quantize(Decimal(1), rounding=ROUND_FLOOR)
    assert figure(block, "Days of credit left") == f"{expected_days} days"
    assert 20 <= expected_days <= 30, "R~300 at 6 kWh (R12) a day"
    assert f"Credit left at {format_amount(history / 14, 'KWH')} a day" in block
    water = pocket_block(response.get_data(as_text=True), "water")
    assert figure(water, "Days of credit left") == "no recent use"
    # An empty pocket no meter draws on and nothing posted to is not shown (issue 12, item 2).
    assert 'id="pocket-solar"' not in response.get_data(as_text=True)


def test_dashboard_refreshes_itself_as_a_fragment(home, login):
    client = login(home.tenant)
    page = client.get(f"/tenant/units/{home.unit}").get_data(as_text=True)
    assert 'hx-trigger="every 60s"' in page and 'id="unit-dashboard"' in page
    fragment = client.get(f"/tenant/units/{home.unit}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="unit-dashboard"') and "<html" not in fragment
    assert "R 500.00" in fragment


def test_units_wallet_shows_its_value_at_todays_tariff_and_days_left(committed, login):
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, denomination="units", currency="LSL", timezone="Africa/Maseru")
        s.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                            kind="flat", rates={"rate": "3.00"}))
        factories.make_meter(s, kit.unit, serial="U-1")
        factories.make_topup(s, kit.pocket("electricity"), "200.000",
                             clearing=kit.accounts.units_issued["electricity"])
        email = make_login(s, "tenant", unit=kit.unit).email
        unit_id, pocket_id = kit.unit.id, kit.pocket("electricity").id
    feed_recent_use(committed, "U-1", days=15, per_six_hours="2.5")  # 10 kWh a day
    block = pocket_block(login(email).get(f"/tenant/units/{unit_id}").get_data(as_text=True), "electricity")
    with committed() as s:
        balance = s.get(Account, pocket_id).balance
    assert format_amount(balance, "KWH") in block
    assert f"≈ {format_amount(balance * 3, 'LSL')} at today's tariff" in block
    days = figure(block, "Days of credit left")
    assert days in ("4 days", "5 days"), days  # ~50 kWh left at ~10 kWh a day


def test_days_of_credit_left_rules():
    assert days_of_credit(Decimal("100"), Decimal("7")) == 14
    assert days_of_credit(Decimal("6.99"), Decimal("7")) == 0
    assert days_of_credit(Decimal("0"), Decimal("7")) == 0
    assert days_of_credit(Decimal("-5"), None) == 0, "nothing left is nothing left"
    assert days_of_credit(Decimal("100"), Decimal("0")) is None, "no use: no estimate"


def test_days_of_credit_take_the_standing_charge_off_on_each_first():
    # 10 a day from 25 Nov: 6 days to the month's end (60), then 50 standing on 1 Dec.
    today = date(2026, 11, 25)
    assert days_of_credit(Decimal("100"), Decimal("10"), today, Decimal("50")) == 6, "the 1st's charge empties it"
    assert days_of_credit(Decimal("59"), Decimal("10"), today, Decimal("50")) == 5, "runs out before the 1st"
    assert days_of_credit(Decimal("200"), Decimal("10"), today, Decimal("50")) == 15  # 200 - 60 - 50 = 90 in Dec
    # Two month ends: 25 Nov-31 Dec is 37 days (370) plus two charges (100).
    assert days_of_credit(Decimal("480"), Decimal("10"), today, Decimal("50")) == 37 + 1
    assert days_of_credit(Decimal("200"), Decimal("10"), today) == 20, "no standing charge: balance / spend"


def day_by_day(balance: Decimal, per_day: Decimal, today: date, monthly: Decimal) -> int:
    """Days of credit the slow way: each coming 1st takes the standing charge, then each day its spend."""
    days, day = 0, today
    while days < 5000:
        if day.day == 1 and day != today:
            balance -= monthly
        if balance < per_day:
            break
        balance -= per_day
        days, day = days + 1, day + timedelta(days=1)
    return days


@settings(max_examples=300, deadline=None)  # at most 2,500 days: inside MAX_CREDIT_MONTHS
@given(balance=st.decimals("0.01", "5000", places=2), per_day=st.decimals("2", "80", places=2),
       monthly=st.decimals("0", "400", places=2), today=st.dates(date(2024, 1, 1), date(2030, 12, 31)))
def test_days_of_credit_matches_a_day_by_day_walk(balance, per_day, monthly, today):
    assert days_of_credit(balance, per_day, today, monthly) == day_by_day(balance, per_day, today, monthly)


def test_dashboard_days_left_count_the_standing_charges(committed, login):
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, timezone="Africa/Johannesburg")
        s.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                            kind="flat", rates={"rate": "2.00"}, standing_charge=Decimal("45.00")))
        factories.make_meter(s, kit.unit, serial="SC-1")
        factories.make_topup(s, kit.pocket("electricity"), "1500.00")
        email = make_login(s, "tenant", unit=kit.unit).email
        unit_id, pocket_id = kit.unit.id, kit.pocket("electricity").id
    feed_recent_use(committed, "SC-1", days=15, per_six_hours="2.5")  # 10 kWh (R20) a day
    block = pocket_block(login(email).get(f"/tenant/units/{unit_id}").get_data(as_text=True), "electricity")
    today = datetime.now(UTC).astimezone(JOBURG).date()
    with committed() as s:
        balance = s.get(Account, pocket_id).balance
        meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SC-1"))
        history = day_rollups(s, meter_id, today - timedelta(days=14), today)
    daily_cost = history / 14 * Decimal("2.00")
    expected = day_by_day(balance, daily_cost, today, Decimal("45.00"))
    assert figure(block, "Days of credit left") == f"{expected} days"
    assert expected < balance / daily_cost, "~55 days always cross a 1st, whose standing charge shortens them"


# --- T2: series from the roll-ups -------------------------------------------------------


def add_readings(s, meter_id: int, points: list[tuple[datetime, str]]) -> None:
    """Insert readings directly (as an import would) and rebuild the meter's roll-ups."""
    for at, consumption in points:
        s.add(Reading(meter_id=meter_id, taken_at=at.astimezone(UTC), register=Decimal("0"),
                      consumption=Decimal(consumption)))
    s.flush()
    rollups.rebuild(s, [meter_id])


def test_weeks_start_on_monday_in_the_estates_timezone(home, committed):
    local = lambda *a: datetime(*a, tzinfo=JOBURG)  # noqa: E731
    with committed() as s:
        add_readings(s, home.electricity_meter, [
            (local(2026, 11, 15, 23, 30), "5"),   # Sunday night: the week of 9 Nov
            (local(2026, 11, 16, 0, 0), "1"),     # exactly midnight closes Sunday's last half hour
            (local(2026, 11, 16, 0, 30), "7"),    # Monday 00:30 local, still Sunday in UTC
            (local(2026, 11, 18, 9, 0), "2"),
            (local(2026, 10, 31, 23, 0), "4"),    # October, though 21:00 UTC
            (local(2026, 9, 1, 0, 0), "100"),     # midnight: closes Monday 31 August
        ])
    now = local(2026, 11, 18, 10, 0)
    with committed() as s:
        weekly = usage_series(s, [home.electricity_meter], "weekly", JOBURG, now)
        daily = usage_series(s, [home.electricity_meter], "daily", JOBURG, now)
        monthly = usage_series(s, [home.electricity_meter], "monthly", JOBURG, now)
    assert len(weekly) == 12 and weekly[-1].start == date(2026, 11, 16) and weekly[-1].start.weekday() == 0
    weeks = {p.start: p.consumption for p in weekly}
    assert weeks[date(2026, 11, 9)] == 6, "Sunday 23:30 and the midnight reading"
    assert weeks[date(2026, 11, 16)] == 9, "Monday 00:30 local is this week although it is Sunday in UTC"
    assert weeks[date(2026, 10, 26)] == 4
    assert len(daily) == 30 and daily[-1].start == date(2026, 11, 18) and daily[0].start == date(2026, 10, 20)
    days = {p.start: p.consumption for p in daily}
    assert (days[date(2026, 11, 15)], days[date(2026, 11, 16)], days[date(2026, 11, 18)]) == (6, 7, 2)
    assert days[date(2026, 10, 31)] == 4 and days[date(2026, 11, 1)] == 0
    assert [p.start for p in monthly] == [date(2025, 12, 1)] + [date(2026, m, 1) for m in range(1, 12)]
    months = {p.start: p.consumption for p in monthly}
    assert (months[date(2026, 8, 1)], months[date(2026, 10, 1)], months[date(2026, 11, 1)]) == (100, 4, 15)
    assert weekly[0].start == date(2026, 8, 31) and weekly[0].consumption == 100
    assert sum(p.consumption for p in weekly) == 100 + 4 + 15, "weekly = the sum of the days it covers"


def test_period_starts_reject_an_unknown_grain():
    with pytest.raises(ValueError):
        period_starts("hourly", date(2026, 11, 18))


def test_rebuild_gives_the_rollups_ingest_maintains(home, committed):
    start = datetime(2026, 10, 30, 18, tzinfo=UTC)
    points = register_series(start, 72, 1, Decimal("0.75"))
    feed(committed, [reading("E-1", at, str(register)) for at, register in points])
    with committed() as s:
        query = select(ConsumptionRollup.grain, ConsumptionRollup.period_start, ConsumptionRollup.consumption,
                       ConsumptionRollup.readings).where(ConsumptionRollup.meter_id == home.electricity_meter) \
            .order_by(ConsumptionRollup.grain, ConsumptionRollup.period_start)
        maintained = s.execute(query).all()
        assert rollups.rebuild(s, [home.electricity_meter]) == len(maintained)
        rebuilt = s.execute(query).all()
    assert rebuilt == maintained
    assert {g for g, *_ in maintained} == {"hour", "day", "month"}
    assert sum(c for g, _, c, _ in maintained if g == "month") == Decimal("0.75") * 72


def test_usage_page_switches_grain_as_a_fragment_and_downloads_csv(home, login, committed):
    feed_recent_use(committed, "E-1", days=3)
    client = login(home.tenant)
    page = client.get(f"/tenant/units/{home.unit}/usage?utility=electricity&grain=daily")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    fragment = client.get(f"/tenant/units/{home.unit}/usage?utility=electricity&grain=weekly",
                          headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="usage"') and "<html" not in fragment
    assert 'data-grain="weekly" aria-current="true"' in fragment
    assert fragment.count('<td data-label="Period">Week of') == 12, "a table row per week for screen readers"
    response = client.get(f"/tenant/units/{home.unit}/usage?utility=electricity&grain=daily&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Period start", "Period", "Consumption", "Consumption unit"]
    assert len(rows) == 31
    today = datetime.now(UTC).astimezone(JOBURG).date()
    assert rows[-1][0] == today.isoformat() and rows[-1][3] == "KWH"
    with committed() as s:
        total = day_rollups(s, home.electricity_meter, today - timedelta(days=29), today + timedelta(days=1))
    assert sum(Decimal(r[2]) for r in rows[1:]) == total > 0


@pytest.mark.parametrize("query", ["utility=gas", "grain=hourly", "grain=daily&format=xls"])
def test_usage_refuses_unknown_choices(home, login, query):
    response = login(home.tenant).get(f"/tenant/units/{home.unit}/usage?{query}")
    assert response.status_code == 400
    assert "must be one of" in response.get_data(as_text=True)
