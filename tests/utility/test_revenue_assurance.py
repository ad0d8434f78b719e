"""Revenue assurance (U4): anomaly scores with known answers, expected vs billed vs collected, cases."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.analytics.losses import local_day_start
from app.analytics.revenue_assurance import (MeterDay, anomaly_inputs, revenue_months, score_estate, score_meter,
                                            why_text)
from app.models import AuditLog, ConsumptionRollup, Estate, TariffVersion
from app.models.utility import RevenueCase
from tests import factories
from tests.helpers import csrf_from, make_login, table_with

DAY = date(2026, 5, 20)
NORMAL = MeterDay(consumption=Decimal(10), history=tuple(Decimal(9 + i % 3) for i in range(30)), zero_hours=0,
                  negative=False, bidirectional=False, occupied=True)


def test_a_normal_day_scores_zero():
    assert score_meter(NORMAL) == (0, [])


def test_each_rule_explains_its_points():
    def rules(day):
        return {p["rule"]: p["points"] for p in score_meter(day)[1]}

    assert rules(NORMAL.__class__(**{**NORMAL.__dict__, "negative": True})) == {"negative_use": 30}
    assert rules(NORMAL.__class__(**{**NORMAL.__dict__, "negative": True, "bidirectional": True})) == {}
    spike = rules(NORMAL.__class__(**{**NORMAL.__dict__, "consumption": Decimal(40)}))
    assert spike == {"z_score": 30, "sudden_change": 20}
    assert rules(NORMAL.__class__(**{**NORMAL.__dict__, "purchases_last_month": Decimal(10),
                                     "purchases_average": Decimal(100)})) == {"purchase_collapse": 20}
    # Zero use for 30 h counts on an occupied unit only (a vacant unit uses nothing).
    assert rules(NORMAL.__class__(**{**NORMAL.__dict__, "zero_hours": 30}))["zero_use"] == 40
    assert "zero_use" not in rules(NORMAL.__class__(**{**NORMAL.__dict__, "zero_hours": 30, "occupied": False}))


@settings(max_examples=30, deadline=None)
@given(consumption=st.decimals(-1000, 1000, places=3), history=st.lists(st.decimals(0, 1000, places=3), max_size=30),
       zero_hours=st.integers(0, 48), negative=st.booleans(), occupied=st.booleans(),
       last=st.none() | st.decimals(0, 10000, places=2), average=st.none() | st.decimals(0, 10000, places=2))
def test_scores_stay_between_0_and_100_and_are_their_parts(consumption, history, zero_hours, negative, occupied,
                                                             last, average):
    score, parts = score_meter(MeterDay(consumption, tuple(history), zero_hours, negative, False, occupied,
                                        last, average))
    assert 0 <= score <= 100
    assert score == min(100, sum(p["points"] for p in parts)) and all(p["why"] for p in parts)


@pytest.fixture
def site(committed):
    """A ZAR estate, a flat 2.00/kWh tariff with a 10.00 standing charge; a normal and a bypassed meter."""
    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Assurance Court")
        estate = kit.estate
        s.add(TariffVersion(estate_id=estate.id, utility="electricity", kind="flat", rates={"rate": "2.00"},
                            standing_charge=Decimal("10.00"), effective_from=date(2026, 1, 1)))
        normal = factories.make_meter(s, kit.unit)
        bypassed = factories.make_meter(s, factories.make_unit(s, estate))
        tz = estate.tz
        for meter in (normal, bypassed):
            for back in range(1, 31):
                s.add(ConsumptionRollup(meter_id=meter.id, grain="day",
                                        period_start=local_day_start(DAY - timedelta(days=back), tz),
                                        consumption=Decimal(9 + back % 3), readings=48))
        end = local_day_start(DAY + timedelta(days=1), tz)
        s.add(ConsumptionRollup(meter_id=normal.id, grain="day", period_start=local_day_start(DAY, tz),
                                consumption=Decimal(10), readings=48))
        s.add(ConsumptionRollup(meter_id=bypassed.id, grain="day", period_start=local_day_start(DAY, tz),
                                consumption=Decimal(0), readings=48))
        for hour in range(1, 31):  # the bypassed meter reported zero for the last 30 hours
            s.add(ConsumptionRollup(meter_id=bypassed.id, grain="hour", period_start=end - timedelta(hours=hour),
                                    consumption=Decimal(0), readings=2))
            s.add(ConsumptionRollup(meter_id=normal.id, grain="hour", period_start=end - timedelta(hours=hour),
                                    consumption=Decimal("0.4"), readings=2))
        # May: 100 kWh metered on the normal meter; 150.00 billed, 300.00 collected.
        month_start = datetime(2026, 5, 1, tzinfo=tz)
        s.add(ConsumptionRollup(meter_id=normal.id, grain="month", period_start=month_start,
                                consumption=Decimal(100), readings=1000))
        pocket = kit.pocket("electricity")
        factories.make_topup(s, pocket, "300.00", occurred_at=month_start + timedelta(days=2))
        factories.make_topup(s, pocket, "-150.00", kind="consumption", occurred_at=month_start + timedelta(days=3))
        user = make_login(s, "utility", estate=estate)
        other = factories.make_estate(s)
        return {"estate": estate.id, "normal": normal.id, "bypassed": bypassed.id, "email": user.email,
                "user": user.id, "other": other.id}


def test_a_30_hour_bypass_scores_above_a_normal_meter_and_opens_one_case(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        scores = {row.meter_id: row for row in score_estate(s, estate, DAY)}
        s.commit()
        bypass, normal = scores[site["bypassed"]], scores[site["normal"]]
        assert normal.score == 0
        assert bypass.score > normal.score and bypass.score >= 50
        assert {p["rule"] for p in bypass.parts} >= {"zero_use"}
        zero = next(p for p in bypass.parts if p["rule"] == "zero_use")
        assert zero["why"] == {"code": "zero_use", "hours": 30} and why_text(zero) == "no use for 30 h on an occupied unit"
        # The inputs computed in SQL are the ones the rows give computed in Python.
        ids = [site["normal"], site["bypassed"]]
        assert anomaly_inputs(s, ids, DAY, estate.tz) == anomaly_inputs(s, ids, DAY, estate.tz, in_sql=False)
        score_estate(s, estate, DAY)  # scored again: still one case for the meter
        s.commit()
        cases = s.scalars(select(RevenueCase)).all()
        assert [(c.meter_id, c.status) for c in cases] == [(site["bypassed"], "open")]


def test_the_inputs_in_sql_are_the_ones_python_computes_for_odd_meters(committed, site):
    """A negative hour in a day of use, a meter silent today after zero hours, one with a gap in its zeros."""
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        tz = estate.tz
        end = local_day_start(DAY + timedelta(days=1), tz)
        rollback, silent, gappy = (factories.make_meter(s, factories.make_unit(s, estate)) for _ in range(3))
        s.add(ConsumptionRollup(meter_id=rollback.id, grain="day", period_start=local_day_start(DAY, tz),
                                consumption=Decimal("4.5"), readings=48))
        for hour in range(1, 25):
            s.add(ConsumptionRollup(meter_id=rollback.id, grain="hour", period_start=end - timedelta(hours=hour),
                                    consumption=Decimal("-1.5") if hour == 7 else Decimal("0.25"), readings=2))
        for hour in range(25, 41):  # silent today, zero for 16 hours before it
            s.add(ConsumptionRollup(meter_id=silent.id, grain="hour", period_start=end - timedelta(hours=hour),
                                    consumption=Decimal(0), readings=2))
        for hour in range(1, 48):  # zero with readings, an hour without readings, use 40 hours back
            s.add(ConsumptionRollup(meter_id=gappy.id, grain="hour", period_start=end - timedelta(hours=hour),
                                    consumption=Decimal("0.1") if hour == 40 else Decimal(0),
                                    readings=0 if hour == 12 else 2))
        s.flush()
        ids = [site["normal"], site["bypassed"], rollback.id, silent.id, gappy.id]
        in_sql = anomaly_inputs(s, ids, DAY, tz)
        assert in_sql == anomaly_inputs(s, ids, DAY, tz, in_sql=False)
        assert in_sql[rollback.id].negative and in_sql[rollback.id].zero_hours == 0
        assert (in_sql[silent.id].readings, in_sql[silent.id].zero_hours) == (0, 16)
        assert in_sql[gappy.id].zero_hours == 38 and in_sql[site["bypassed"]].zero_hours == 30


def test_expected_billed_and_collected_for_a_month(committed, site):
    with committed() as s:
        may = next(m for m in revenue_months(s, s.get(Estate, site["estate"]), "2026-06", 3) if m.period == "2026-05")
        assert (may.expected, may.billed, may.collected) == (Decimal("210.00"), Decimal("150.00"), Decimal("300.00"))
        assert may.unbilled == Decimal("60.00") and may.consumption == {"electricity": Decimal(100)}


def test_a_case_is_resolved_only_with_a_note_and_every_change_is_audited(committed, site, login):
    with committed() as s:
        score_estate(s, s.get(Estate, site["estate"]), DAY)
    with committed() as s:
        case_id = s.scalar(select(RevenueCase.id))
    client = login(site["email"])
    page = client.get(f"/utility/estates/{site['estate']}/revenue")
    assert page.status_code == 200 and "Zero use (possible bypass)" in page.get_data(as_text=True)
    # The bypassed meter is listed; the normal one scored 0 and is only counted.
    assert len(table_with(page.get_data(as_text=True), "Score").texts()) == 1
    assert "Meters that scored 0 and are not listed: 1." in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    url = f"/utility/estates/{site['estate']}/cases"
    refused = client.post(url, data={"case_id": case_id, "status": "resolved", "csrf_token": token})
    assert refused.status_code == 400 and "Say how the case was resolved" in refused.get_data(as_text=True)
    taken = client.post(url, data={"case_id": case_id, "status": "investigating", "assigned_user_id": site["user"],
                                   "csrf_token": token})
    assert taken.status_code == 200
    done = client.post(url, data={"case_id": case_id, "status": "resolved", "note": "Seal broken; meter replaced",
                                  "csrf_token": token})
    assert done.status_code == 200 and "Seal broken" in done.get_data(as_text=True)
    # Another estate's page cannot reach this case.
    assert client.post(f"/utility/estates/{site['other']}/cases",
                       data={"case_id": case_id, "status": "open", "csrf_token": token}).status_code == 404
    with committed() as s:
        case = s.get(RevenueCase, case_id)
        assert (case.status, case.assigned_user_id, case.note) == ("resolved", site["user"], "Seal broken; meter replaced")
        actions = s.scalars(select(AuditLog.action).where(AuditLog.entity_type == "RevenueCase")
                            .order_by(AuditLog.id)).all()
        assert actions == ["revenue_case.open", "revenue_case.update", "revenue_case.update"]
    for table in ("months", "scores", "cases"):
        export = client.get(f"/utility/estates/{site['estate']}/revenue?format=csv&table={table}")
        assert export.status_code == 200 and export.mimetype == "text/csv"
        if table == "scores":  # the download has every scored meter, 0 too
            assert len(export.get_data(as_text=True).strip().splitlines()) == 1 + 2
    assert client.get(f"/utility/estates/{site['estate']}/revenue?format=csv&table=nope").status_code == 400


_signed_in: dict = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[__import__("hypothesis").HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["case_id", "status", "assigned_user_id", "note"]),
                            st.text(max_size=30), max_size=4))
def test_case_form_never_fails(committed, site, login, form):
    client = _signed_in.get(site["email"]) or _signed_in.setdefault(site["email"], login(site["email"]))
    token = _signed_in.setdefault("token", csrf_from(client.get("/notifications").get_data(as_text=True)))
    response = client.post(f"/utility/estates/{site['estate']}/cases", data={**form, "csrf_token": token})
    assert response.status_code in (200, 400, 404)


def test_each_reason_is_put_into_words_when_shown_and_old_english_rows_still_show(app):
    from flask_babel import force_locale

    spike = dict(score_meter(NORMAL.__class__(**{**NORMAL.__dict__, "consumption": Decimal("1234.5")}))[1][0])
    assert spike["why"]["code"] == "z_score"
    collapse = score_meter(NORMAL.__class__(**{**NORMAL.__dict__, "purchases_last_month": Decimal(10),
                                               "purchases_average": Decimal(100)}))[1][0]
    old = {"rule": "zero_use", "points": 40, "why": "no use for 30 h on an occupied unit"}
    with app.test_request_context("/"):
        assert why_text(spike) == "used 1,234.50 against a 30-day average of 10.00 (z = +1499.7)"
        assert why_text(collapse) == "last month's top-ups 10.00 are under 20 % of its average 100.00"
        assert why_text(old) == old["why"]
        with force_locale("fr"):
            assert why_text(collapse) == "les recharges du mois dernier, 10,00, sont inférieures à 20 % de sa moyenne, 100,00"
            assert why_text(old) == old["why"]  # stored as text before: shown as it was


def test_a_case_why_shows_in_french(committed, site, login):
    with committed() as s:
        score_estate(s, s.get(Estate, site["estate"]), DAY)
    client = login(site["email"])
    page = client.get(f"/utility/estates/{site['estate']}/revenue")
    client.post("/language", data={"language": "fr", "csrf_token": csrf_from(page.get_data(as_text=True))})
    text = client.get(f"/utility/estates/{site['estate']}/revenue").get_data(as_text=True)
    assert "aucune consommation pendant 30 h dans un logement occupé" in text
    assert "no use for 30 h" not in text
