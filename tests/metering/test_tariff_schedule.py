"""Tariff schedules (C5): the staff form and its validation, the impact report, advance notices
(sent once) and activation on the effective date; billing picks versions by date."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app.billing import BillingError, schedule
from app.settings import put_setting
from app.metering.ingest import ingest
from app.metering.queries import period_bounds
from app.models import AuditLog, Notification, Tenancy, UnitOwnership, utcnow
from app.models.metering import ConsumptionRollup, TariffVersion
from tests.factories import make_period, make_user
from tests.metering.conftest import at, balance, direct
from tests.helpers import csrf_from, sign_in

pytestmark = pytest.mark.usefixtures("fresh_rate_limits")


def versions(session) -> int:
    return session.scalar(select(func.count(TariffVersion.id)))


def form(metered, days_ahead=45, **fields) -> dict:
    effective = utcnow().astimezone(metered.estate.tz).date() + timedelta(days=days_ahead)
    data = {"estate_id": metered.estate.id, "utility": "electricity", "kind": "flat", "rate": "2.50",
            "effective_from": effective.isoformat(), "standing_charge": "", "solar_rate": ""}
    data.update(fields)
    return data


def post(client, data):
    token = csrf_from(client.get("/staff/tariffs/new").get_data(as_text=True))
    return client.post("/staff/tariffs", data={**data, "csrf_token": token})


# --- the form ------------------------------------------------------------------------------

def test_staff_create_a_future_version_audited(session, metered, staff_client):
    before = versions(session)
    response = post(staff_client, form(metered, kind="block", block_up_to=["50", "100", ""],
                                       block_rate=["1.50", "2.00", "2.75"], solar_rate="0.80"))
    assert response.status_code == 302
    session.expire_all()
    version = session.scalar(select(TariffVersion).order_by(TariffVersion.id.desc()))
    assert versions(session) == before + 1
    assert version.rates == {"blocks": [{"up_to": "50", "rate": "1.50"}, {"up_to": "100", "rate": "2.00"},
                                        {"up_to": None, "rate": "2.75"}]}
    assert version.solar_rate == Decimal("0.80") and version.created_by_user_id is not None
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "tariff.create"))
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Impact on last month" in page and "solar exports credited at R 0.80/kWh" in page


@pytest.mark.parametrize("fields, message", [
    ({"kind": "block", "block_up_to": ["100", "50", ""], "block_rate": ["1", "2", "3"]}, "Blocks must go up"),
    ({"kind": "block", "block_up_to": ["50", "100"], "block_rate": ["1", "2"]}, "last block must be open-ended"),
    ({"kind": "tou", "window_start": ["22:00", "05:00"], "window_end": ["06:00", "22:00"],
      "window_rate": ["1", "3"]}, "overlaps"),
    ({"kind": "tou", "window_start": ["22:00", "07:00"], "window_end": ["06:00", "22:00"],
      "window_rate": ["1", "3"]}, "No window covers 06:00 to 07:00"),
    ({"kind": "flat", "rate": "abc"}, "Rate must be a number"),
    ({"kind": "flat", "rate": "-1"}, "Rate must be above zero"),
])
def test_invalid_tariff_forms_answer_400_and_save_nothing(session, metered, staff_client, fields, message):
    before = versions(session)
    response = post(staff_client, form(metered, **fields))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    session.expire_all()
    assert versions(session) == before


def test_effective_date_must_give_notice_and_avoid_locked_periods(session, metered, staff_client):
    soon = post(staff_client, form(metered, days_ahead=3))
    assert soon.status_code == 400 and "30 days ahead" in soon.get_data(as_text=True)
    target = utcnow().astimezone(metered.estate.tz).date() + timedelta(days=70)
    make_period(session, metered.estate, f"{target:%Y-%m}", "locked")
    session.commit()
    locked = post(staff_client, form(metered, days_ahead=70))
    assert locked.status_code == 400 and "is locked" in locked.get_data(as_text=True)
    session.expire_all()
    assert versions(session) == 1


def test_a_tariff_form_without_csrf_is_refused(session, metered, staff_client):
    assert staff_client.post("/staff/tariffs", data=form(metered)).status_code == 400
    assert versions(session) == 1


def test_windows_crossing_midnight_that_tile_the_day_are_accepted(session, metered):
    put_setting(session, schedule.NOTICE_DAYS_SETTING, 0, metered.estate.id)
    data = MultiDict(form(metered, kind="tou"))
    for start, end, rate in (("22:00", "06:00", "1.00"), ("06:00", "22:00", "3.00")):
        data.add("window_start", start), data.add("window_end", end), data.add("window_rate", rate)
    fields = schedule.parse_version(session, data)
    assert fields["rates"]["windows"][0] == {"start": "22:00", "end": "06:00", "rate": "1.00"}
    # The unit price (units estates) is the day's time-weighted average: (8 x 1 + 16 x 3) / 24.
    assert Decimal(fields["rates"]["default_rate"]) == Decimal("2.3333")


def test_units_estates_cannot_use_inclining_blocks(session, metered):
    metered.estate.wallet_denomination = "units"
    with pytest.raises(schedule.TariffFormError, match="one price per unit"):
        schedule.parse_version(session, MultiDict(form(metered, kind="block", block_up_to=[""], block_rate=["2"])))


def test_non_staff_get_404_on_tariff_pages(session, metered, app):
    tenant = make_user(session, "tenant", unit=metered.unit)
    session.commit()
    client = app.test_client()
    sign_in(client, tenant.email)
    version = session.scalar(select(TariffVersion))
    for url in ("/staff/tariffs", "/staff/tariffs/new", f"/staff/tariffs/{version.id}"):
        assert client.get(url).status_code == 404, url
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    assert client.post("/staff/tariffs", data={**form(metered), "csrf_token": token}).status_code == 404
    assert versions(session) == 1


# --- impact report -------------------------------------------------------------------------

def _last_month(metered):
    return period_bounds("last_month", utcnow(), metered.estate.tz)


def test_impact_report_prices_last_month_under_old_and_new(session, metered):
    start, _ = _last_month(metered)
    session.add(ConsumptionRollup(meter_id=metered.meter.id, grain="month", period_start=start,
                                  consumption=Decimal("100"), readings=10))
    new = TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="flat",
                        effective_from=date.today() + timedelta(days=40), rates={"rate": "2.50"},
                        standing_charge=Decimal("10"))
    session.add(new)
    session.commit()
    report = schedule.impact_report(session, new)
    [row] = report.rows
    assert (row.consumption, row.old_cost, row.new_cost) == (Decimal("100"), Decimal("200.00"), Decimal("260.00"))
    assert row.change == Decimal("60.00") and row.percent == Decimal("30.0")


def test_impact_report_uses_the_hour_of_day_for_time_of_use(session, metered):
    start, _ = _last_month(metered)
    tz = metered.estate.tz
    local = start.astimezone(tz)
    for hour, used in ((23, "10"), (12, "20")):
        moment = datetime(local.year, local.month, 5, hour, tzinfo=tz).astimezone(UTC)
        session.add(ConsumptionRollup(meter_id=metered.meter.id, grain="hour", period_start=moment,
                                      consumption=Decimal(used), readings=2))
    new = TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="tou",
                        effective_from=date.today() + timedelta(days=40),
                        rates={"default_rate": "2.33", "windows": [{"start": "22:00", "end": "06:00", "rate": "1"},
                                                                   {"start": "06:00", "end": "22:00", "rate": "3"}]})
    session.add(new)
    session.commit()
    [row] = schedule.impact_report(session, new).rows
    assert (row.old_cost, row.new_cost) == (Decimal("60.00"), Decimal("70.00"))  # 10 x 1 + 20 x 3


# --- notices and activation ----------------------------------------------------------------

def _people(session, metered):
    tenant = make_user(session, "tenant", unit=metered.unit)
    owner = make_user(session, "owner", unit=metered.unit)
    session.add(Tenancy(unit_id=metered.unit.id, person_id=tenant.person_id, move_in=date(2020, 1, 1)))
    session.add(UnitOwnership(unit_id=metered.unit.id, person_id=owner.person_id, since=date(2020, 1, 1)))
    former = make_user(session, "tenant", unit=metered.unit)
    session.add(Tenancy(unit_id=metered.unit.id, person_id=former.person_id, move_in=date(2020, 1, 1),
                        move_out=date(2021, 1, 1)))
    return tenant, owner, former


def test_notices_go_out_n_days_ahead_once_and_activation_comes_on_the_date(session, metered):
    tenant, owner, former = _people(session, metered)
    put_setting(session, schedule.NOTICE_DAYS_SETTING, 10, metered.estate.id)
    effective = date(2031, 6, 20)
    version = TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="flat",
                            effective_from=effective, rates={"rate": "3.10"})
    session.add(version)
    session.commit()
    noon = lambda day: datetime(day.year, day.month, day.day, 10, tzinfo=UTC)  # noqa: E731
    # Too early for the notice; the fixture's 2020 version is switched on (it was never marked).
    assert schedule.run_schedule(session, now=noon(effective - timedelta(days=11))) == (0, 1)
    assert schedule.run_schedule(session, now=noon(effective - timedelta(days=10))) == (1, 0)
    notes = session.scalars(select(Notification).where(Notification.template == "tariff_notice")).all()
    assert {n.person_id for n in notes} == {tenant.person_id, owner.person_id}  # not the former tenant
    assert {n.channel for n in notes} == {"in_app", "email"}
    assert "R 3.10/kWh" in notes[0].body and "20 June 2031" in notes[0].subject
    assert schedule.run_schedule(session, now=noon(effective - timedelta(days=5))) == (0, 0)  # sent once
    assert session.scalar(select(func.count(Notification.id)).where(Notification.template == "tariff_notice")) == len(notes)
    assert version.activated_at is None
    assert schedule.run_schedule(session, now=noon(effective)) == (0, 1)
    session.expire_all()
    assert session.get(TariffVersion, version.id).activated_at is not None
    audit = session.scalar(select(AuditLog).where(AuditLog.action == "tariff.activate",
                                                  AuditLog.entity_id == str(version.id)))
    assert audit.new["effective_from"] == "2031-06-20"


def test_the_schedule_job_runs_through_the_job_queue(session, metered):
    from app.jobs import enqueue

    run = enqueue("tariff_schedule")
    assert run.status == "done" and "activated" in run.result
    session.expire_all()
    assert session.scalar(select(TariffVersion)).activated_at is not None


def test_billing_picks_the_version_by_date_without_waiting_for_the_job(session, metered):
    today = at(90).astimezone(metered.estate.tz).date()
    session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="flat",
                              effective_from=today, rates={"rate": "3.00"}))
    session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="flat",
                              effective_from=today + timedelta(days=2), rates={"rate": "9.00"}))
    session.commit()
    ingest(session, [direct("23022673", at(90), "10"), direct("23022673", at(60), "12")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("94.00")  # 2 kWh at today's R3.00


def test_form_errors_are_keyed_by_field(session, metered):
    with pytest.raises(schedule.TariffFormError) as refused:
        schedule.parse_version(session, MultiDict(form(metered, rate="", effective_from="soon")))
    assert refused.value.errors == {"effective_from": "Effective from must be a date (YYYY-MM-DD).",
                                    "rate": "Rate is required."}
    assert isinstance(refused.value, BillingError)
