"""Consumption profiles (U5) on constructed roll-ups with known answers: bands by tertiles (ties
share a band), peak hour in local time, weekday against weekend per day, the estate's curve."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.analytics.profiles import assign_bands, estate_profiles
from app.models import ConsumptionRollup, Estate
from tests import factories
from tests.helpers import make_login

TZ = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 6, 8, 10, 0, tzinfo=TZ)  # a Monday: the last 7 days are Mon 1 to Sun 7 June
DAYS = [datetime(2026, 6, d, tzinfo=TZ) for d in range(1, 8)]
WEEKDAYS, WEEKEND = DAYS[:5], DAYS[5:]


def _use(s, meter, local_start: datetime, kwh) -> None:
    """Add kWh to the hour and day roll-ups of a local hour (as ingest would)."""
    day = local_start.replace(hour=0)
    for grain, start in (("hour", local_start), ("day", day)):
        start = start.astimezone(UTC)
        row = s.query(ConsumptionRollup).filter_by(meter_id=meter.id, grain=grain, period_start=start).one_or_none()
        if row is None:
            s.add(ConsumptionRollup(meter_id=meter.id, grain=grain, period_start=start, consumption=Decimal(kwh), readings=1))
            s.flush()
        else:
            row.consumption += Decimal(kwh)


@pytest.fixture
def site(committed):
    with committed() as s:
        estate = factories.make_estate(s, name="Profile Court", timezone="Africa/Johannesburg")
        meters = {}
        for number in "ABCDEFZ":
            meters[number] = factories.make_meter(s, factories.make_unit(s, estate, number=number))
        for day in DAYS:
            _use(s, meters["A"], day.replace(hour=19), 1)
            _use(s, meters["D"], day.replace(hour=20), 5)
            _use(s, meters["E"], day.replace(hour=20), 5)
        for day in WEEKDAYS:
            _use(s, meters["B"], day.replace(hour=7), 2)
        for day in WEEKEND:
            _use(s, meters["C"], day.replace(hour=12), 3)
        _use(s, meters["F"], DAYS[0].replace(hour=6), 10)
        _use(s, meters["F"], DAYS[0].replace(hour=23), 1)
        # Outside the window: the day before and today.
        _use(s, meters["A"], datetime(2026, 5, 31, 19, tzinfo=TZ), 100)
        _use(s, meters["A"], NOW.replace(hour=8), 100)
        water = factories.make_meter(s, estate=estate,
                                     utility="water", role="bulk")
        _use(s, water, DAYS[0].replace(hour=19), 999)  # a bulk water meter is not a unit's use
        other = factories.make_estate(s, name="Elsewhere")
        return {"estate": estate.id, "other": other.id,
                "email": make_login(s, "utility", estate=estate).email}


def test_bands_peaks_and_weekend_use_match_the_hand_worked_figures(committed, site):
    with committed() as s:
        report = estate_profiles(s, s.get(Estate, site["estate"]), days=7, now=NOW)
    assert (report.first.isoformat(), report.last.isoformat(), report.weekdays, report.weekend_days) == (
        "2026-06-01", "2026-06-07", 5, 2)
    rows = [(u.unit_number, u.band, u.total, u.peak_hour, u.weekday_per_day, u.weekend_per_day) for u in report.units]
    assert rows == [
        ("A", "light", Decimal(7), 19, Decimal("1.00"), Decimal("1.00")),
        ("B", "moderate", Decimal(10), 7, Decimal("2.00"), Decimal("0.00")),
        ("C", "light", Decimal(6), 12, Decimal("0.00"), Decimal("3.00")),
        ("D", "heavy", Decimal(35), 20, Decimal("5.00"), Decimal("5.00")),
        ("E", "heavy", Decimal(35), 20, Decimal("5.00"), Decimal("5.00")),
        ("F", "moderate", Decimal(11), 6, Decimal("2.20"), Decimal("0.00")),
        ("Z", None, Decimal(0), None, Decimal("0.00"), Decimal("0.00")),
    ]
    assert report.cuts == (Decimal(10), Decimal(35))
    curve = dict(report.curve)
    assert len(curve) == 24
    assert (curve[6], curve[7], curve[12], curve[19], curve[20], curve[23], curve[0]) == (
        Decimal("1.43"), Decimal("1.43"), Decimal("0.86"), Decimal("1.00"), Decimal("10.00"), Decimal("0.14"), Decimal("0.00"))


def test_tertiles_give_ties_one_band_and_leave_no_use_unbanded():
    assert assign_bands({1: Decimal(5), 2: Decimal(5), 3: Decimal(5)}) == {1: "light", 2: "light", 3: "light"}
    assert assign_bands({1: Decimal(1), 2: Decimal(2), 3: Decimal(3), 4: Decimal(0)}) == {
        1: "light", 2: "moderate", 3: "heavy"}
    assert assign_bands({}) == {}


def test_the_profiles_page_exports_and_is_scoped_to_the_estate(committed, site, login, monkeypatch):
    from app.layers.utility import profiles as profiles_page
    from tests.helpers import table_with

    monkeypatch.setattr(profiles_page, "UNITS_PER_PAGE", 4)  # 7 units: pages of A-D and E, F, Z
    client = login(site["email"])
    second = client.get(f"/utility/estates/{site['estate']}/profiles?days=7&page=2").get_data(as_text=True)
    assert [r[0] for r in table_with(second, "Peak hour").texts()] == ["E", "F", "Z"]
    assert "Units 5 to 7 of 7" in second and 'rel="prev"' in second
    csv_rows = client.get(f"/utility/estates/{site['estate']}/profiles?days=7&page=2&format=csv").data.decode()
    assert len(csv_rows.strip().splitlines()) == 1 + 7  # the download has every unit
    page = client.get(f"/utility/estates/{site['estate']}/profiles?days=7")
    assert page.status_code == 200 and b"Consumption profiles" in page.data
    csv = client.get(f"/utility/estates/{site['estate']}/profiles?days=7&format=csv&table=units").data.decode()
    assert csv.lstrip("\ufeff").splitlines()[0].startswith("Unit,Band,Use (kWh),Peak hour")
    assert client.get(f"/utility/estates/{site['estate']}/profiles?format=pdf&table=curve").data.startswith(b"%PDF")
    assert client.get(f"/utility/estates/{site['other']}/profiles").status_code == 404
    assert client.get(f"/utility/estates/{site['estate']}/profiles?days=12").status_code == 400
    assert client.get(f"/utility/estates/{site['estate']}/profiles?days=³⁰").status_code == 400
    assert client.get(f"/utility/estates/{site['estate']}/profiles?utility=gas").status_code == 400


def _same(report):
    return (report.first, report.last, report.weekdays, report.weekend_days, report.curve, report.cuts,
            [(u.unit_number, u.band, u.total, u.peak_hour, u.weekday_per_day, u.weekend_per_day) for u in report.units])


def test_the_stored_profiles_equal_the_live_figures_and_the_job_stores_every_window(committed, site):
    from app.analytics.profiles import stored_profiles
    from app.analytics.utility_jobs import utility_profiles_job
    from app.jobs import Progress
    from app.models.utility_figures import ProfileRun

    with committed() as s:
        estate = s.get(Estate, site["estate"])
        live = {days: estate_profiles(s, estate, days=days, now=NOW) for days in (7, 30, 90)}
        stored = {days: stored_profiles(s, estate, days=days, now=NOW) for days in (7, 30, 90)}  # computed once
        for days in (7, 30, 90):
            assert _same(stored[days]) == _same(live[days]) and stored[days].computed_at is not None
        assert live[7].computed_at is None
    with committed() as s:
        assert "profiled" in utility_profiles_job(s, Progress(None), NOW.astimezone(UTC))
        runs = s.query(ProfileRun).filter_by(estate_id=site["estate"]).all()
        assert sorted((r.utility, r.window_days) for r in runs) == [
            (u, d) for u in ("electricity", "hot_water", "water") for d in (7, 30, 90)]
        assert _same(stored_profiles(s, s.get(Estate, site["estate"]), days=7, now=NOW)) == _same(live[7])
        for run in runs:  # without the page's summary the report is read from the meter rows: the same
            run.summary = None
        s.flush()
        for days in (7, 30, 90):
            assert _same(stored_profiles(s, s.get(Estate, site["estate"]), days=days, now=NOW)) == _same(live[days])


def test_hours_count_at_their_local_hour_across_a_clock_change(committed):
    paris = ZoneInfo("Europe/Paris")  # clocks go forward on Sunday 29 March 2026
    now = datetime(2026, 4, 2, 10, tzinfo=paris)
    with committed() as s:
        estate = factories.make_estate(s, name="Rive Gauche", timezone="Europe/Paris")
        meter = factories.make_meter(s, factories.make_unit(s, estate, number="1"))
        for day in range(26, 32):
            _use(s, meter, datetime(2026, 3, day, 20, tzinfo=paris), 1)
        _use(s, meter, datetime(2026, 4, 1, 20, tzinfo=paris), 1)
        report = estate_profiles(s, estate, days=7, now=now)
    (unit,) = report.units
    assert (unit.total, unit.peak_hour) == (Decimal(7), 20)
    assert [h for h, v in report.curve if v] == [20]
