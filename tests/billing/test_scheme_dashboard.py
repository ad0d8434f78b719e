"""Scheme dashboard (B1) and common property (B2) for a body-corporate user; locking a month."""
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from app.billing.levies import record_levy_payment, run_levies, save_definition
from app.billing.scheme import common_property, scheme_months
from app.models import FinancialPeriod, Person, TariffVersion, UnitOwnership
from app.models.metering import ConsumptionRollup
from app.periods import current_period, month_bounds, previous_period
from tests.factories import make_estate, make_meter, make_unit
from tests.helpers import csrf_from, make_login, sign_in


def _scheme(session):
    estate = make_estate(session, code="DASH", name="Dash Court")
    other = make_estate(session, code="DASO", name="Other Court")
    units = [make_unit(session, estate, number=f"D{i}", floor_area_m2="50") for i in (1, 2)]
    for unit in units:
        person = Person(full_name=f"Owner {unit.number}")
        session.add(person)
        session.flush()
        session.add(UnitOwnership(unit_id=unit.id, person_id=person.id, since=date(2020, 1, 1)))
    bulk = make_meter(session, estate=estate, role="bulk", serial="BULK-1")
    meters = [make_meter(session, unit, serial=f"UNIT-{unit.number}") for unit in units]
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.00"}))
    this = current_period(estate.tz)
    start, _ = month_bounds(this, estate.tz)
    for meter, used in ((bulk, "500"), (meters[0], "200"), (meters[1], "150")):
        session.add(ConsumptionRollup(meter_id=meter.id, grain="month", period_start=start,
                                      consumption=Decimal(used), readings=10))
    user = make_login(session, "body_corporate", estate=estate)
    session.commit()
    return estate, other, units, user


def test_the_dashboard_shows_levies_common_property_and_surplus(session, client):
    estate, other, units, user = _scheme(session)
    this = current_period(estate.tz)
    save_definition(session, estate, {"name": "Admin", "amount": "1000.00", "frequency": "monthly",
                                      "allocation": "equal", "effective_from": previous_period(this), "units": "all"})
    run_levies(session, estate, previous_period(this))
    run_levies(session, estate, this)  # last month's unpaid invoices become arrears
    record_levy_payment(session, units[0], "700.00", "EFT-D1")

    [row] = common_property(session, estate, "month", 12)
    assert (row.bulk, row.units, row.common, row.cost) == (Decimal("500"), Decimal("350"), Decimal("150"),
                                                          Decimal("300.00"))
    month = scheme_months(session, estate, 12)[0]
    assert (month.billed, month.collected, month.utility_spend, month.surplus) == (
        Decimal("1000.00"), Decimal("700.00"), Decimal("300.00"), Decimal("400.00"))
    assert month.arrears == Decimal("500.00")  # D1's 500 paid from its 700; D2's 500 still owed

    sign_in(client, user.email)
    page = client.get(f"/body-corporate/estates/{estate.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "R 1\u202f000.00" in html and "R 300.00" in html and "150.0 kWh" in html
    csv = client.get(f"/body-corporate/estates/{estate.id}?format=csv").get_data(as_text=True)
    assert csv.lstrip("\ufeff").startswith("Month,Levies billed") and this in csv
    assert client.get(f"/body-corporate/estates/{estate.id}?format=pdf").data.startswith(b"%PDF")
    assert client.get(f"/body-corporate/estates/{other.id}").status_code == 404

    token = csrf_from(html)
    last = previous_period(this)
    assert client.post(f"/body-corporate/estates/{estate.id}/periods/{last}",
                       data={"csrf_token": token, "status": "locked"}).status_code == 302
    session.expire_all()
    assert session.scalar(select(FinancialPeriod.status).where(FinancialPeriod.period == last)) == "locked"
    refused = client.post(f"/body-corporate/estates/{estate.id}/periods/{this}",
                          data={"csrf_token": token, "status": "locked"})
    assert refused.status_code == 400 and "has not ended" in refused.get_data(as_text=True)
    assert client.post(f"/body-corporate/estates/{other.id}/periods/{last}",
                       data={"csrf_token": token, "status": "locked"}).status_code == 404
