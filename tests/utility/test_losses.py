"""Losses (U1, U2): constructed days with known answers, the once-per-episode alert and the page."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.analytics.losses import (alert_new_episodes, compute_days, local_day_start, loss_percent,
                                  monthly_series)
from app.models import ConsumptionRollup, Estate, Notification
from app.models.utility import LossDay
from tests import factories
from tests.helpers import make_login, table_with

D1 = date(2026, 3, 10)  # four days: 5 % loss, 20 %, 25 %, then a day a unit meter was silent
DAYS = [(D1, 100, (50, 45)), (D1 + timedelta(days=1), 100, (40, 40)),
        (D1 + timedelta(days=2), 100, (40, 35)), (D1 + timedelta(days=3), 100, (50, None))]


def _rollup(s, meter, day, tz, consumption, grain="day", readings=48, start=None):
    s.add(ConsumptionRollup(meter_id=meter.id, grain=grain, period_start=start or local_day_start(day, tz),
                            consumption=Decimal(consumption), readings=readings))


@pytest.fixture
def site(committed):
    """An estate with a bulk meter, two unit meters, a utility user and the four days above."""
    with committed() as s:
        estate = factories.make_estate(s, name="Loss Park")
        old = datetime(2025, 1, 1, tzinfo=estate.tz)
        bulk = factories.make_meter(s, estate=estate, role="bulk")
        units = [factories.make_meter(s, factories.make_unit(s, estate)) for _ in range(2)]
        for meter in (bulk, *units):
            meter.created_at = old
        for day, bulk_use, unit_use in DAYS:
            _rollup(s, bulk, day, estate.tz, bulk_use)
            for meter, used in zip(units, unit_use):
                if used is not None:
                    _rollup(s, meter, day, estate.tz, used)
        user = make_login(s, "utility", estate=estate)
        other = factories.make_estate(s, name="Elsewhere")
        return {"estate": estate.id, "email": user.email, "user": user.id, "other": other.id}


def _run(s, estate_id):
    estate = s.get(Estate, estate_id)
    rows = compute_days(s, estate, D1, DAYS[-1][0])
    sent = alert_new_episodes(s, estate, rows)
    s.commit()
    return rows, sent


def test_a_20_percent_day_is_flagged_once_and_an_incomplete_day_never(committed, site):
    with committed() as s:
        rows, sent = _run(s, site["estate"])
        got = [(r.day, r.loss_percent, r.complete, r.over_threshold, r.alerted) for r in rows]
        assert got == [(D1, Decimal("5.00"), True, False, False),
                       (D1 + timedelta(days=1), Decimal("20.00"), True, True, True),
                       (D1 + timedelta(days=2), Decimal("25.00"), True, True, True),
                       (D1 + timedelta(days=3), None, False, False, False)]
        assert rows[-1].missing_meters == 1
        assert sent == 1  # the 25 % day continues the episode the 20 % day opened
        again = _run(s, site["estate"])[1]  # the job runs again: nothing is sent twice
        assert again == 0
        alerts = s.scalars(select(Notification).where(Notification.user_id == site["user"],
                                                      Notification.channel == "in_app")).all()
        assert len(alerts) == 1 and "20.00 %" in alerts[0].subject
        assert s.scalar(select(func.count(LossDay.id))) == 4  # recomputed in place


def test_a_month_counts_its_complete_days_only(committed, site):
    with committed() as s:
        _run(s, site["estate"])
        (month,) = monthly_series(s, site["estate"], "electricity", D1.replace(day=1), date(2026, 3, 31),
                                  Decimal("15"))
        assert (month.bulk, month.units, month.loss_percent) == (Decimal(300), Decimal(250), Decimal("16.67"))
        assert not month.complete and month.missing_meters == 1 and month.over_threshold


def test_the_sums_in_sql_are_the_ones_the_rows_give_in_python(committed, site):
    """A meter installed on the third day and one replaced after the first count on their live days only."""
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        late = factories.make_meter(s, factories.make_unit(s, estate))
        late.created_at = local_day_start(D1 + timedelta(days=2), estate.tz) + timedelta(hours=5)
        gone = factories.make_meter(s, factories.make_unit(s, estate))
        gone.created_at = datetime(2025, 1, 1, tzinfo=estate.tz)
        gone.detached_at = local_day_start(D1 + timedelta(days=1), estate.tz) + timedelta(hours=1)
        _rollup(s, late, D1 + timedelta(days=3), estate.tz, "7.5")
        _rollup(s, gone, D1, estate.tz, "3.25")
        s.flush()

        def figures(in_sql):
            rows = compute_days(s, estate, D1 - timedelta(days=1), DAYS[-1][0] + timedelta(days=1), in_sql=in_sql)
            return [(r.day, r.utility, r.bulk, r.units, r.missing_meters, r.complete, r.loss_percent) for r in rows]

        in_sql = figures(True)
        assert in_sql == figures(False)
        assert [(day, missing) for day, _u, _b, _n, missing, _c, _p in in_sql] == [
            (D1 - timedelta(days=1), 4), (D1, 0), (D1 + timedelta(days=1), 1), (D1 + timedelta(days=2), 1),
            (D1 + timedelta(days=3), 1), (D1 + timedelta(days=4), 4)]


def test_loss_percent_without_bulk_is_unknown():
    assert loss_percent(Decimal(0), Decimal(5)) is None
    assert loss_percent(Decimal(10), Decimal(12)) == Decimal("-20.00")  # units above bulk: a gain


def test_the_page_shows_the_days_and_exports_them(committed, site, login, app):
    with committed() as s:
        _run(s, site["estate"])
        # Move the constructed days into the page's last-30-days window.
        today = datetime.now(s.get(Estate, site["estate"]).tz).date()
        for offset, row in enumerate(sorted(s.scalars(select(LossDay)).all(), key=lambda r: r.day)):
            row.day = today - timedelta(days=4 - offset)
    client = login(site["email"])
    page = client.get(f"/utility/estates/{site['estate']}/losses")
    assert page.status_code == 200
    table = table_with(page.get_data(as_text=True), "Loss %")
    states = [row[-1] for row in table.texts()]
    assert states[0].startswith("Incomplete") and states[1:3] == ["Over threshold", "Over threshold"]
    csv = client.get(f"/utility/estates/{site['estate']}/losses?format=csv").get_data(as_text=True)
    assert "20.00" in csv and "Incomplete (1 without readings)" in csv
    pdf = client.get(f"/utility/estates/{site['estate']}/losses?grain=month&format=pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.get(f"/utility/estates/{site['other']}/losses").status_code == 404


_signed_in: dict = {}  # one sign-in for all examples (the login form is rate limited)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(utility=st.text(max_size=12), grain=st.text(max_size=8), fmt=st.sampled_from(["", "csv", "pdf", "xls"]))
def test_losses_page_never_fails_on_odd_parameters(committed, site, login, utility, grain, fmt):
    client = _signed_in.get(site["email"]) or _signed_in.setdefault(site["email"], login(site["email"]))
    query = {"utility": utility, "grain": grain, **({"format": fmt} if fmt else {})}
    response = client.get(f"/utility/estates/{site['estate']}/losses", query_string=query)
    assert response.status_code in (200, 400, 404)
