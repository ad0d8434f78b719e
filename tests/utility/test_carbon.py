"""Carbon (U5) on a hand-worked example: the electricity factor changes on 16 March, so March is
priced in two parts; a water factor starting on 5 March leaves earlier water use unpriced; the
solar meter's generation offsets at the electricity factor of its day. Staff edit factors with
validation and audit."""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from app.analytics.carbon import FactorError, estate_carbon, save_factor
from app.models import AuditLog, ConsumptionRollup, Estate
from app.models.utility import EmissionFactor
from tests import factories
from tests.helpers import csrf_from, make_login


def _day(s, meter, day: date, quantity, tz) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    s.add(ConsumptionRollup(meter_id=meter.id, grain="day", period_start=start, consumption=Decimal(quantity), readings=48))
    # and the month's roll-up, as ingest keeps it (the page reads whole months from it)
    month = datetime(day.year, day.month, 1, tzinfo=tz).astimezone(UTC)
    s.flush()
    row = s.query(ConsumptionRollup).filter_by(meter_id=meter.id, grain="month", period_start=month).one_or_none()
    if row is None:
        s.add(ConsumptionRollup(meter_id=meter.id, grain="month", period_start=month, consumption=Decimal(quantity),
                                readings=48))
    else:
        row.consumption += Decimal(quantity)


@pytest.fixture
def site(committed):
    with committed() as s:
        s.query(EmissionFactor).delete()
        estate = factories.make_estate(s, name="Carbon Court", timezone="Africa/Johannesburg")
        estate.country = "ZA"
        for country, utility, day, kg in (("ZA", "electricity", date(2026, 1, 1), "0.9"),
                                          ("ZA", "electricity", date(2026, 3, 16), "1.0"),
                                          ("ZA", "water", date(2026, 3, 5), "0.5"),
                                          ("LS", "electricity", date(2026, 1, 1), "0.1")):
            s.add(EmissionFactor(country=country, utility=utility, effective_from=day, kg_per_unit=Decimal(kg), source="test"))
        a, b = factories.make_unit(s, estate, number="A"), factories.make_unit(s, estate, number="B")
        tz = estate.tz
        a_power, b_power = factories.make_meter(s, a), factories.make_meter(s, b)
        a_water = factories.make_meter(s, a, utility="water")
        solar = factories.make_meter(s, a, utility="solar", role="solar")
        bulk = factories.make_meter(s, estate=estate, role="bulk")
        for meter, day, quantity in ((a_power, date(2026, 2, 28), 3), (a_power, date(2026, 3, 10), 10),
                                     (a_power, date(2026, 3, 20), 20), (b_power, date(2026, 3, 15), 5),
                                     (b_power, date(2026, 3, 16), 5), (a_water, date(2026, 3, 1), 2),
                                     (a_water, date(2026, 3, 10), 4), (solar, date(2026, 3, 1), 4),
                                     (solar, date(2026, 3, 20), 8), (bulk, date(2026, 3, 20), 500),
                                     (a_power, date(2026, 4, 1), 1000)):
            _day(s, meter, day, quantity, tz)
        staff = make_login(s, "staff")
        return {"estate": estate.id, "staff": staff.email,
                "utility": make_login(s, "utility", estate=estate).email}


def test_a_factor_change_mid_month_splits_the_month(committed, site):
    with committed() as s:
        report = estate_carbon(s, s.get(Estate, site["estate"]), ["2026-02", "2026-03"])
    february, march = report.months
    assert (february.use, february.kg, february.total_kg) == (
        {"electricity": Decimal(3)}, {"electricity": Decimal("2.700")}, Decimal("2.700"))
    # A: 10 kWh x 0.9 + 20 x 1.0 = 29; B: 5 x 0.9 + 5 x 1.0 = 9.5; water 4 kL x 0.5 = 2 (2 kL before the factor)
    assert march.use == {"electricity": Decimal(40), "water": Decimal(6)}
    assert march.kg == {"electricity": Decimal("38.500"), "water": Decimal("2.000")}
    assert march.unpriced == {"water": Decimal(2)}
    assert march.total_kg == Decimal("40.500")
    # solar 4 kWh x 0.9 + 8 kWh x 1.0
    assert (march.solar_kwh, march.offset_kg, march.net_kg) == (Decimal(12), Decimal("11.600"), Decimal("28.900"))
    units = [(u.unit_number, u.period, u.kg) for u in report.units]
    assert units == [("A", "2026-02", {"electricity": Decimal("2.700")}),
                     ("A", "2026-03", {"electricity": Decimal("29.000"), "water": Decimal("2.000")}),
                     ("B", "2026-03", {"electricity": Decimal("9.500")})]


def test_the_carbon_page_shows_figures_exports_and_is_scoped(committed, site, login):
    client = login(site["utility"])
    page = client.get(f"/utility/estates/{site['estate']}/carbon")
    assert page.status_code == 200 and b"Carbon footprint" in page.data
    assert client.get(f"/utility/estates/{site['estate']}/carbon?format=csv&table=months").status_code == 200
    assert client.get(f"/utility/estates/{site['estate']}/carbon?format=pdf&table=units").data.startswith(b"%PDF")
    assert client.get(f"/utility/estates/{site['estate']}/carbon?month=1999-01").status_code == 400
    with committed() as s:
        other = factories.make_estate(s).id
    assert client.get(f"/utility/estates/{other}/carbon").status_code == 404
    assert client.get("/staff/emission-factors").status_code == 404  # a utility user is not staff


def test_staff_add_and_change_factors_with_validation_and_audit(committed, site, login):
    client = login(site["staff"])
    page = client.get("/staff/emission-factors")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    bad = client.post("/staff/emission-factors", data={"csrf_token": token, "country": "ZAF", "utility": "gas", "effective_from": "soon",
                                                       "kg_per_unit": "-1"})
    assert bad.status_code == 400
    for message in (b"two-letter code", b"Choose electricity", b"YYYY-MM-DD", b"between 0 and 100"):
        assert message in bad.data
    duplicate = client.post("/staff/emission-factors", data={"csrf_token": token, "country": "za", "utility": "electricity",
                                                             "effective_from": "2026-03-16", "kg_per_unit": "0.8"})
    assert duplicate.status_code == 400 and b"already have a factor" in duplicate.data
    made = client.post("/staff/emission-factors", data={"csrf_token": token, "country": "za", "utility": "hot_water",
                                                        "effective_from": "2026-01-01", "kg_per_unit": "1.25",
                                                        "source": "Eskom 2025"})
    assert made.status_code in (302, 303)
    with committed() as s:
        factor = s.scalar(select(EmissionFactor).where(EmissionFactor.utility == "hot_water"))
        assert (factor.country, factor.kg_per_unit) == ("ZA", Decimal("1.2500"))
        factor_id = factor.id
    assert client.post(f"/staff/emission-factors/{factor_id}", data={"csrf_token": token, "kg_per_unit": "x"}).status_code == 400
    assert client.post(f"/staff/emission-factors/{factor_id}", data={"csrf_token": token, "kg_per_unit": "1.5", "source": "revised"}).status_code in (302, 303)
    assert client.post("/staff/emission-factors/999999", data={"csrf_token": token, "kg_per_unit": "1"}).status_code == 404
    with committed() as s:
        assert s.get(EmissionFactor, factor_id).kg_per_unit == Decimal("1.5000")
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.entity_id == str(factor_id))
                                              .order_by(AuditLog.id))]
        assert actions[-2:] == ["emission_factor.created", "emission_factor.changed"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["country", "utility", "effective_from", "kg_per_unit", "source"]),
                            st.text(max_size=30)))
def test_any_form_is_saved_or_refused_with_field_messages(app, form):
    from app.extensions import db
    with app.app_context():
        try:
            factor = save_factor(db.session, form)
        except FactorError as error:
            db.session.rollback()
            assert error.errors and set(error.errors) <= {"country", "utility", "effective_from", "kg_per_unit", "source"}
        else:
            assert 0 <= factor.kg_per_unit <= 100
            db.session.delete(factor)
            db.session.commit()


def test_the_whole_carbon_report_is_one_pdf_with_every_figure(site, login):
    import io

    from pypdf import PdfReader

    client = login(site["utility"])
    response = client.get(f"/utility/estates/{site['estate']}/carbon?table=report&format=pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
    for part in ("Carbon Court carbon footprint", "By month, last 12", "By unit,", "Emission factors in use",
                 "Footprint kg"):
        assert part in text, part
    assert client.get(f"/utility/estates/{site['estate']}/carbon?table=report&format=csv").status_code == 400


def test_the_unit_table_is_paged_and_only_the_estates_utilities_are_columns(site, login, monkeypatch):
    """Carbon Court has electricity and water meters but no hot water: no Hot water column on the
    page, its CSV or the PDF. A page of one unit (the page size made 1) shows A, the next B; the month
    figures and the downloads still cover both."""
    import io

    from pypdf import PdfReader

    from app.layers.utility import carbon as carbon_page
    from tests.helpers import table_with

    monkeypatch.setattr(carbon_page, "UNITS_PER_PAGE", 1)
    client = login(site["utility"])
    url = f"/utility/estates/{site['estate']}/carbon?month=2026-03"
    first = client.get(url).get_data(as_text=True)
    units = table_with(first, "Total")
    assert units.headers == ["Unit", "Electricity", "Water", "Total"]
    assert [row[0] for row in units.texts()] == ["A"]
    assert "Hot water" not in first and "Units 1 to 1 of 2" in first and 'rel="next"' in first
    assert "page=2" in first and "#units-heading" in first
    months = table_with(first, "Footprint")
    assert months.headers == ["Month", "Electricity", "Water", "Footprint", "Solar offset", "Net"]
    assert ["2026-03", "38.5", "2.0", "40.5", "11.6", "28.9"] in [[c.replace("*", "").strip() for c in r]
                                                                 for r in months.texts()]
    second = client.get(url + "&page=2").get_data(as_text=True)
    assert [row[0] for row in table_with(second, "Total").texts()] == ["B"] and 'rel="prev"' in second
    assert [row[0] for row in table_with(client.get(url + "&page=9").get_data(as_text=True), "Total").texts()] == ["B"]
    assert client.get(url + "&page=0").status_code == 400 and client.get(url + "&page=x").status_code == 400
    csv = client.get(url + "&page=2&format=csv&table=units").get_data(as_text=True).splitlines()
    assert csv[0].lstrip("\ufeff") == "Unit,Month,Electricity kg CO2e,Water kg CO2e,Total kg CO2e"
    assert [line.split(",")[0] for line in csv[1:]] == ["A", "B"]
    header = client.get(url + "&format=csv&table=months").get_data(as_text=True).splitlines()[0]
    assert "Water kL" in header and "Hot water" not in header
    pdf = client.get(url + "&table=report&format=pdf").data
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Water kg" in text and "Hot water" not in text
