"""Meters administration pages (X6): lists, the unit's component, adding, editing and replacing."""
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from app.metering.ingest import ingest
from app.models import Meter
from tests import factories
from tests.helpers import csrf_from, table_with
from tests.metering.conftest import direct

HX = {"HX-Request": "true"}


def column(html: str, header: str) -> list[str]:
    """The texts of one column of the page's meters table."""
    table = table_with(html, "Serial")
    index = table.headers.index(header)
    return [row[index].text for row in table.rows if len(row) > index]


def token(client, path="/notifications") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def meter_with_history(committed, world, serial="OLD-7") -> int:
    """A meter on unit A with two readings two and one hours ago (register 100, then 104)."""
    with committed() as s:
        from app.models import Unit
        meter = factories.make_meter(s, s.get(Unit, world.unit_a), serial=serial)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        ingest(s, [direct(serial, now - timedelta(hours=2), "100"), direct(serial, now - timedelta(hours=1), "104")])
        return meter.id


def test_an_agent_adds_a_meter_to_a_unit_from_the_component_and_sees_refusals_next_to_fields(world, login):
    agent = login(world.emails["agent"])
    url = f"/admin/units/{world.unit_a}/meters"
    page = agent.get(url, headers=HX)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="unit-meters"') and "<html" not in html
    csrf = token(agent)
    added = agent.post(url, data={"csrf_token": csrf, "serial": "000077001", "utility": "water", "role": "unit",
                                  "protocol": "mqtt_direct", "interval_minutes": "30"}, headers=HX)
    assert added.status_code == 200
    html = added.get_data(as_text=True)
    assert "Meter 77001 added" in html
    assert column(html, "Utility")[0].startswith("Water")
    again = agent.post(url, data={"csrf_token": csrf, "serial": "77001", "utility": "electricity",
                                  "interval_minutes": "7"}, headers=HX)
    assert again.status_code == 400
    html = again.get_data(as_text=True)
    assert "Meter 77001 is already registered" in html and "divide a day evenly" in html
    assert 'id="serial-error"' in html


def test_the_estate_meters_list_searches_filters_and_exports(world, login, committed):
    meter_with_history(committed, world, serial="SEARCH-ME")
    agent = login(world.emails["agent"])
    csrf = token(agent)
    assert agent.post(f"/admin/estates/{world.estate1}/meters",
                      data={"csrf_token": csrf, "serial": "BULK-1", "utility": "electricity", "role": "bulk"}
                      ).status_code == 302
    html = agent.get(f"/admin/estates/{world.estate1}/meters").get_data(as_text=True)
    assert set(column(html, "Serial")) >= {"SEARCH-ME", "BULK-1"}
    assert "Meters" in html and f"/admin/estates/{world.estate1}/meters" in html  # in the admin nav
    found = agent.get(f"/admin/estates/{world.estate1}/meters?q=search", headers=HX).get_data(as_text=True)
    assert column(found, "Serial") == ["SEARCH-ME"]
    bulk = agent.get(f"/admin/estates/{world.estate1}/meters?role=bulk&age=never").get_data(as_text=True)
    assert column(bulk, "Serial") == ["BULK-1"]
    csv = agent.get(f"/admin/estates/{world.estate1}/meters?format=csv&q=bulk")
    assert csv.mimetype == "text/csv" and "BULK-1" in csv.get_data(as_text=True)
    assert "SEARCH-ME" not in csv.get_data(as_text=True)
    pdf = agent.get(f"/admin/estates/{world.estate1}/meters?format=pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert agent.get(f"/admin/estates/{world.estate1}/meters?utility=gas&age=%00").status_code == 200


def test_a_replacement_through_the_form_refuses_a_lower_register_then_swaps(world, login, committed):
    meter_id = meter_with_history(committed, world)
    agent = login(world.emails["agent"])
    url = f"/admin/units/{world.unit_a}/meters/{meter_id}/replace"
    form = agent.get(url)
    assert form.status_code == 200 and "Closing register" in form.get_data(as_text=True)
    csrf = csrf_from(form.get_data(as_text=True))
    with committed() as s:
        from app.models import Estate
        tz = s.get(Estate, world.estate1).tz
    swap = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).astimezone(tz)
    data = {"csrf_token": csrf, "closing_register": "99", "closing_time": swap.strftime("%Y-%m-%dT%H:%M"),
            "serial": "NEW-7", "protocol": "mqtt_direct", "interval_minutes": "", "opening_register": "0"}
    refused = agent.post(url, data=data)
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "below the last reading, 104" in html and 'id="closing_register-error"' in html
    done = agent.post(url, data={**data, "closing_register": "105.5"})
    assert done.status_code == 302
    page = agent.get(f"/admin/units/{world.unit_a}/meters").get_data(as_text=True)
    states = dict(zip(column(page, "Serial"), column(page, "State")))
    assert states["NEW-7"].startswith("In service") and "replaced OLD-7" in states["NEW-7"]
    assert states["OLD-7"].startswith("Replaced") and "by NEW-7" in states["OLD-7"]
    with committed() as s:
        old = s.get(Meter, meter_id)
        assert old.detached_at is not None and old.last_register == 105.5


def test_a_meter_of_another_unit_is_404_under_this_units_url(world, login, committed):
    with committed() as s:
        from app.models import Unit
        neighbour = factories.make_meter(s, s.get(Unit, world.unit_a2)).id
        foreign = factories.make_meter(s, s.get(Unit, world.unit_b)).id
    for role in ("agent", "staff"):
        client = login(world.emails[role])
        assert client.get(f"/admin/units/{world.unit_a}/meters/{neighbour}/replace").status_code == 404
        assert client.get(f"/admin/units/{world.unit_a}/meters/{neighbour}/edit").status_code == 404
        assert client.get(f"/admin/estates/{world.estate1}/meters/{foreign}/edit").status_code == 404
        assert client.post(f"/admin/units/{world.unit_a}/meters/{foreign}/replace",
                           data={"csrf_token": token(client)}).status_code == 404


def test_editing_a_meter_saves_and_shows_errors(world, login, committed):
    meter_id = meter_with_history(committed, world)
    agent = login(world.emails["agent"])
    url = f"/admin/units/{world.unit_a}/meters/{meter_id}/edit"
    csrf = csrf_from(agent.get(url).get_data(as_text=True))
    refused = agent.post(url, data={"csrf_token": csrf, "serial": "OTHER", "protocol": "chirpstack"})
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "Replace the meter instead" in html and "enter it" in html  # the DevEUI LoRaWAN needs
    saved = agent.post(url, data={"csrf_token": csrf, "serial": "OLD-7", "protocol": "http", "interval_minutes": "15"})
    assert saved.status_code == 302
    with committed() as s:
        assert (s.get(Meter, meter_id).protocol, s.get(Meter, meter_id).interval_minutes) == ("http", 15)


def test_the_unit_page_slot_loads_the_component_with_a_plain_link_fallback(app, world, committed):
    from flask import render_template

    with committed() as s:
        from app.models import Unit
        unit = s.get(Unit, world.unit_a)
        with app.test_request_context():
            html = render_template("admin/_unit_slot_meters.html", unit=unit, estate=unit.estate)
    assert f'hx-get="/admin/units/{world.unit_a}/meters"' in html and 'hx-trigger="load"' in html
    assert f'<a href="/admin/units/{world.unit_a}/meters">' in html


FIELD_TEXT = st.one_of(st.sampled_from(["", "0", "30", "-1", "1e3", "99999999999999999999", "electricity", "bulk",
                                        "chirpstack", "0004A30B001C0530", "2026-13-40T25:61", "\x00", "💡"]),
                       st.text(max_size=40))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({name: FIELD_TEXT for name in (
    "serial", "dev_eui", "utility", "role", "protocol", "interval_minutes", "register_digits", "bidirectional",
    "closing_register", "closing_time", "opening_register")}))
def test_fuzzed_add_and_replace_forms_answer_200_302_or_400_never_500(world, login, committed, values):
    agent, csrf, meter_id = _fuzz_client(world, login, committed)
    for url in (f"/admin/units/{world.unit_a}/meters", f"/admin/estates/{world.estate1}/meters",
                f"/admin/units/{world.unit_a}/meters/{meter_id}/replace"):
        response = agent.post(url, data={**values, "csrf_token": csrf}, headers=HX)
        assert response.status_code in (200, 204, 302, 400), (url, values, response.status_code)


_FUZZ: dict = {}


def _fuzz_client(world, login, committed):
    """One signed-in agent and one meter for all the examples of a test run (world is per test)."""
    key = id(world)
    if key not in _FUZZ:
        with committed() as s:
            from app.models import Unit
            meter = s.scalar(select(Meter).where(Meter.unit_id == world.unit_a, Meter.serial == "FUZZ-1"))
            meter_id = meter.id if meter else factories.make_meter(s, s.get(Unit, world.unit_a), serial="FUZZ-1").id
        agent = login(world.emails["agent"])
        _FUZZ.clear()
        _FUZZ[key] = (agent, token(agent), meter_id)
    return _FUZZ[key]
