"""M6 period queries, the HTTP readings endpoint (M4) and the staff metering pages."""
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.metering.api_keys import create_api_key
from app.metering.ingest import ingest, set_maintenance
from app.metering.queries import meter_periods, period_bounds
from app.models.metering import DeadLetter
from tests.factories import make_user
from tests.metering.conftest import at, balance, direct
from tests.helpers import csrf_from, sign_in

NAIROBI = ZoneInfo("Africa/Nairobi")


def test_period_bounds_follow_the_estate_timezone():
    now = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # Tuesday 3 March 01:30 in Nairobi
    assert period_bounds("today", now, NAIROBI)[0] == datetime(2026, 3, 2, 21, tzinfo=UTC)
    assert period_bounds("this_week", now, NAIROBI)[0] == datetime(2026, 3, 1, 21, tzinfo=UTC)
    assert period_bounds("this_month", now, NAIROBI)[0] == datetime(2026, 2, 28, 21, tzinfo=UTC)
    assert period_bounds("last_month", now, NAIROBI) == (datetime(2026, 1, 31, 21, tzinfo=UTC),
                                                         datetime(2026, 2, 28, 21, tzinfo=UTC))
    assert period_bounds("last_30_minutes", now, NAIROBI)[0] == now - timedelta(minutes=30)


def test_meter_periods_give_first_last_and_consumption(session, metered):
    ingest(session, [direct("23022673", at(60), "100"), direct("23022673", at(30), "101"),
                     direct("23022673", at(0), "104.5")])
    session.commit()
    periods = {p.period: p for p in meter_periods(session, metered.meter, now=at(0) + timedelta(minutes=1))}
    recent = periods["last_30_minutes"]
    assert (recent.first_at, recent.last_at, recent.consumption) == (at(0), at(0), Decimal(0))
    month = periods["this_month"]
    if month.first_at == at(60):  # not just after a month start
        assert month.consumption == Decimal("4.5")
    assert periods["last_month"].consumption is None or periods["last_month"].first_at < at(60)


def test_http_endpoint_needs_a_key_bills_and_answers_503_in_maintenance(session, metered, client):
    key = create_api_key(session, "gateway 1")
    session.commit()
    body = {"readings": [{"meter": "00023022673", "time": at(60).isoformat(), "energy": "100 kWh"},
                         {"meter": "23022673", "time": at(30).isoformat(), "energy": "101.5 kWh"},
                         {"meter": "nope", "time": at(30).isoformat(), "energy": "1 kWh"}]}
    assert client.post("/api/v1/readings", json=body).status_code == 401
    assert client.post("/api/v1/readings", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    response = client.post("/api/v1/readings", json=body, headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.json["accepted"] == 2 and response.json["refused"] == ["unknown meter NOPE"]
    assert balance(session, metered.pocket) == Decimal("97.00")
    set_maintenance(session, True)
    session.commit()
    paused = client.post("/api/v1/readings", json=body, headers={"X-API-Key": key})
    assert paused.status_code == 503 and paused.headers["Retry-After"]


def test_staff_see_meters_and_replay_dead_letters(session, metered, app):
    staff = make_user(session, "staff")
    ingest(session, [direct("555", at(60), "10"), direct("23022673", at(30), "100")])
    session.commit()
    client = app.test_client()
    assert sign_in(client, staff.email).status_code == 302
    meters = client.get("/staff/metering").get_data(as_text=True)
    assert "23022673" in meters and "online" in meters and "1 dead letter waiting" in meters
    page = client.get("/staff/metering/dead-letters").get_data(as_text=True)
    assert "unknown meter 555" in page
    letter = session.scalar(select(DeadLetter))
    response = client.post("/staff/metering/dead-letters/replay",
                           data={"dead_letter_id": letter.id, "csrf_token": csrf_from(page)})
    assert response.status_code == 302
    session.expire_all()
    assert session.get(DeadLetter, letter.id).replay_outcome == "refused again: unknown meter 555"
    no_token = client.post("/staff/metering/maintenance", data={"on": "1"})
    assert no_token.status_code == 400
    client.post("/staff/metering/maintenance", data={"on": "1", "csrf_token": csrf_from(page)})
    assert "Resume ingest" in client.get("/staff/metering/commands").get_data(as_text=True)


def test_tenants_cannot_reach_staff_metering(session, metered, app):
    tenant = make_user(session, "tenant", unit=metered.unit)
    session.commit()
    client = app.test_client()
    sign_in(client, tenant.email)
    assert client.get("/staff/metering").status_code == 404
    assert client.get("/staff/metering/dead-letters").status_code == 404


# --- online / offline: one protocol-aware rule for every page ---------------------------


def test_imported_meters_go_offline_after_two_days_others_after_two_hours_or_three_intervals():
    from app.metering.queries import reading_is_recent

    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    hours = lambda n: now - timedelta(hours=n)  # noqa: E731
    assert reading_is_recent(hours(30), "sparkmeter", 60, now)       # yesterday's Koios import
    assert reading_is_recent(hours(48), "sparkmeter", 60, now)
    assert not reading_is_recent(hours(49), "sparkmeter", 60, now)
    assert not reading_is_recent(hours(3), "mqtt_direct", 30, now)   # 2 h beats 3 x 30 min
    assert reading_is_recent(hours(2), "mqtt_direct", 30, now)
    assert reading_is_recent(hours(2.9), "chirpstack", 60, now)      # 3 x 60 min beats 2 h
    assert not reading_is_recent(hours(3.1), "chirpstack", 60, now)
    assert not reading_is_recent(hours(2.1), "http", None, now)
    assert not reading_is_recent(None, "sparkmeter", 60, now)


def test_meter_list_unit_cards_and_estate_figures_agree_on_who_is_online(session, metered, app):
    """Vendor-fed (SparkMeter) meters are never "online": a day-old import says nothing about now.
    They say "imported daily, last import …", and the Overview counts only live meters online."""
    from app.metering.queries import is_online, meter_rows, online_meter_count
    from app.models import Reading
    from app.reports.summaries import estate_figures, unit_cards
    from tests.factories import make_meter, make_unit

    now = datetime.now(UTC)
    cases = {  # serial: (protocol, interval, hours since the last reading, feed status)
        "SM019001": ("sparkmeter", 60, 43, "imported"), "SM019002": ("sparkmeter", 60, 50, "import_overdue"),
        "7001": ("mqtt_direct", 30, 1, "online"), "7002": ("mqtt_direct", 30, 20, "offline"),
        "7003": ("chirpstack", 60, 2.5, "online"), "7004": ("http", None, 2.5, "offline")}
    for number, (serial, (protocol, interval, hours, _)) in enumerate(cases.items()):
        unit = make_unit(session, metered.estate, number=f"Z{number}")
        meter = make_meter(session, unit, serial=serial, protocol=protocol, interval_minutes=interval)
        meter.last_reading_at = now - timedelta(hours=hours)
        if serial == "SM019001":  # last night's import brought readings up to 43 h ago
            session.flush()
            session.add(Reading(meter_id=meter.id, taken_at=meter.last_reading_at, register=Decimal("5"),
                                received_at=now - timedelta(hours=5)))
    session.commit()  # the metered fixture's own meter has never reported: offline
    expected = {serial: case[3] for serial, case in cases.items()} | {"23022673": "offline"}
    rows = meter_rows(session, [metered.estate.id])
    assert {row.meter.serial: row.status for row in rows} == expected
    assert all(row.online == is_online(row.meter, now) for row in rows)
    cards = unit_cards(session, [row.meter.unit for row in rows])
    assert {m.serial: m.status for card in cards for m in card.meters} == expected
    assert online_meter_count(session, metered.estate.id) == 2
    figures = estate_figures(session, metered.estate)
    assert (figures.meters_online, figures.meters_live, figures.meters_imported) == (2, 5, 2)
    staff = make_user(session, "staff")
    session.commit()
    client = app.test_client()
    sign_in(client, staff.email)
    page = client.get("/staff/metering").get_data(as_text=True)
    status = {serial: cell for serial, cell in re.findall(
        r'data-label="Meter"><a [^>]*>([^<]+)</a>.*?<td data-label="Status">(.*?)</td>', page, re.S)}
    assert "imported daily" in status["SM019001"] and "last import 5 h ago" in status["SM019001"]
    assert "online" not in status["SM019001"]
    assert "import overdue" in status["SM019002"] and "last import never" in status["SM019002"]
    assert ">online<" in status["7001"] and ">offline<" in status["7002"]
    offline = client.get("/staff/metering?offline=1").get_data(as_text=True)
    listed = set(re.findall(r'data-label="Meter"><a [^>]*>([^<]+)</a>', offline))
    assert listed == {serial for serial, state in expected.items() if state in ("offline", "import_overdue")}
    overview = client.get("/staff/").get_data(as_text=True)
    assert "<dt>Meters online</dt><dd>2 / 5" in overview
    assert "<dt>Meters imported daily</dt><dd>2</dd>" in overview
