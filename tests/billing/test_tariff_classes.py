"""Tariff classes (C5, issue 14 item 8): each unit pays its class's tariff; impact reports,
notices and explanations follow the class; the administration page creates, renames and
assigns classes, audited and scoped to the agent's estates."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app.billing import BillingError, schedule, tariff_classes
from app.metering.ingest import ingest
from app.metering.queries import period_bounds
from app.models import AuditLog, LedgerTransaction, Notification, Posting, Tenancy, Unit, utcnow
from app.models.metering import ConsumptionRollup, TariffVersion
from app.models.tariff import TariffClass
from app.reports.history import explain_transaction
from app.settings import put_setting
from tests.factories import make_estate_with_wallet, make_meter, make_topup, make_unit, make_user, make_wallet
from tests.helpers import csrf_from, sign_in
from tests.metering.conftest import at, balance, direct

pytestmark = pytest.mark.usefixtures("fresh_rate_limits")


@pytest.fixture
def pme(session, metered):
    """The metered estate with a PME class at R3.00/kWh and a second funded unit on it."""
    pme_class = tariff_classes.create_class(session, metered.estate, "pme", "PME (small business)")
    session.add(TariffVersion(estate_id=metered.estate.id, tariff_class_id=pme_class.id, utility="electricity",
                              effective_from=date(2020, 1, 1), kind="flat", rates={"rate": "3.00"}))
    shop = make_unit(session, metered.estate, number="SHOP1")
    wallet = make_wallet(session, shop)
    meter = make_meter(session, shop, serial="000055500001")
    make_topup(session, wallet.pocket("electricity"), "100.00")
    session.commit()
    tariff_classes.assign_class(session, metered.estate, [shop.id], pme_class.id)
    return pme_class, shop, meter, wallet.pocket("electricity")


def test_a_pme_and_a_residential_unit_using_the_same_pay_their_own_class_prices(session, metered, pme):
    _, shop, _, shop_pocket = pme
    ingest(session, [direct("23022673", at(90), "10"), direct("23022673", at(60), "12"),
                     direct("55500001", at(90), "10"), direct("55500001", at(60), "12")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("96.00")  # 2 kWh at the default R2.00
    assert balance(session, shop_pocket) == Decimal("94.00")  # 2 kWh at PME's R3.00


def test_the_explanation_names_the_units_class_and_reprices_at_its_rate(session, metered, pme):
    _, shop, _, shop_pocket = pme
    ingest(session, [direct("55500001", at(90), "10"), direct("55500001", at(60), "12")])
    session.commit()
    tx = session.scalar(select(LedgerTransaction.id).join(Posting).where(
        Posting.account_id == shop_pocket.id, LedgerTransaction.kind == "consumption"))
    found = explain_transaction(session, session.get(Unit, shop.id), tx)
    assert found.tariff_class == "PME (small business)"
    assert found.recomputed == found.charged == Decimal("6.00")
    assert [line.rate for line in found.charge_lines] == [Decimal("3.00")]
    # The default unit's explanation names its class too (the estate has two).
    ingest(session, [direct("23022673", at(90), "10"), direct("23022673", at(60), "11")])
    session.commit()
    tx = session.scalar(select(LedgerTransaction.id).join(Posting).where(
        Posting.account_id == metered.pocket.id, LedgerTransaction.kind == "consumption"))
    assert explain_transaction(session, metered.unit, tx).tariff_class == "Standard"


def test_the_tenant_explanation_page_shows_the_class(session, metered, pme, app):
    _, shop, _, shop_pocket = pme
    tenant = make_user(session, "tenant", unit=shop)
    session.add(Tenancy(unit_id=shop.id, person_id=tenant.person_id, move_in=date(2020, 1, 1)))
    session.commit()
    ingest(session, [direct("55500001", at(90), "10"), direct("55500001", at(60), "12")])
    session.commit()
    tx = session.scalar(select(LedgerTransaction.id).join(Posting).where(
        Posting.account_id == shop_pocket.id, LedgerTransaction.kind == "consumption"))
    client = app.test_client()
    assert sign_in(client, tenant.email).status_code == 302
    page = client.get(f"/tenant/units/{shop.id}/transactions/{tx}").get_data(as_text=True)
    assert 'tariff class <strong class="tariff-class">PME (small business)</strong>' in page


def test_a_class_without_its_own_version_pays_the_default_prices(session, metered):
    later = tariff_classes.create_class(session, metered.estate, "later", "Later class")
    tariff_classes.assign_class(session, metered.estate, [metered.unit.id], later.id)
    ingest(session, [direct("23022673", at(90), "10"), direct("23022673", at(60), "12")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("96.00")


def test_one_class_estates_bill_as_before_and_get_their_default_class_on_demand(session, metered):
    assert session.scalar(select(func.count(TariffClass.id))) == 0
    ingest(session, [direct("23022673", at(90), "10"), direct("23022673", at(60), "12")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("96.00")
    put_setting(session, schedule.NOTICE_DAYS_SETTING, 0, metered.estate.id)
    effective = utcnow().astimezone(metered.estate.tz).date() + timedelta(days=5)
    version = schedule.create_version(session, MultiDict({
        "estate_id": metered.estate.id, "utility": "electricity", "kind": "flat", "rate": "2.50",
        "effective_from": effective.isoformat()}))
    default = tariff_classes.find_default(session, metered.estate.id)
    assert (default.code, default.is_default, version.tariff_class_id) == ("standard", True, default.id)
    assert tariff_classes.default_class(session, metered.estate).id == default.id  # made once
    assert schedule.previous_version(session, version).rates == {"rate": "2.00"}  # the NULL-class one


def _tenant(session, unit):
    user = make_user(session, "tenant", unit=unit)
    session.add(Tenancy(unit_id=unit.id, person_id=user.person_id, move_in=date(2020, 1, 1)))
    return user


def test_a_class_tariff_notice_goes_to_that_class_units_only(session, metered, pme):
    pme_class, shop, shop_meter, _ = pme
    resident, shopkeeper = _tenant(session, metered.unit), _tenant(session, shop)
    put_setting(session, schedule.NOTICE_DAYS_SETTING, 10, metered.estate.id)
    effective = date(2031, 6, 20)
    pme_version = TariffVersion(estate_id=metered.estate.id, tariff_class_id=pme_class.id, utility="electricity",
                                kind="flat", effective_from=effective, rates={"rate": "3.40"})
    session.add(pme_version)
    session.commit()
    noon = datetime(2031, 6, 10, 10, tzinfo=UTC)
    schedule.run_schedule(session, now=noon)
    notes = session.scalars(select(Notification).where(Notification.template == "tariff_notice")).all()
    assert {n.person_id for n in notes} == {shopkeeper.person_id}
    assert "R 3.40/kWh" in notes[0].body
    # A default-class version reaches the default units only: PME has its own prices.
    session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity", kind="flat",
                              effective_from=date(2031, 6, 25), rates={"rate": "2.20"}))
    session.commit()
    schedule.run_schedule(session, now=datetime(2031, 6, 15, 10, tzinfo=UTC))
    later = session.scalars(select(Notification).where(Notification.template == "tariff_notice",
                                                       Notification.id.not_in([n.id for n in notes]))).all()
    assert {n.person_id for n in later} == {resident.person_id}
    # The impact report of the PME version prices the PME unit only, and names its class.
    report = schedule.impact_report(session, pme_version)
    assert [row.unit_number for row in report.rows] == ["SHOP1"] and report.tariff_class == "PME (small business)"


def test_impact_report_compares_a_class_version_with_that_class_previous_prices(session, metered, pme):
    pme_class, shop, shop_meter, _ = pme
    start, _ = period_bounds("last_month", utcnow(), metered.estate.tz)
    for meter in (metered.meter, shop_meter):
        session.add(ConsumptionRollup(meter_id=meter.id, grain="month", period_start=start,
                                      consumption=Decimal("100"), readings=10))
    version = TariffVersion(estate_id=metered.estate.id, tariff_class_id=pme_class.id, utility="electricity",
                            kind="flat", effective_from=date.today() + timedelta(days=40), rates={"rate": "3.50"})
    session.add(version)
    session.commit()
    [row] = schedule.impact_report(session, version).rows
    assert (row.unit_number, row.old_cost, row.new_cost) == ("SHOP1", Decimal("300.00"), Decimal("350.00"))


# --- the administration page --------------------------------------------------------------

def _client(app, user):
    client = app.test_client()
    assert sign_in(client, user.email).status_code == 302
    return client


def _post(client, url, **data):
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def test_an_agent_creates_renames_and_assigns_classes_audited(session, metered, app):
    agent = make_user(session, "agent", estate=metered.estate)
    second = make_unit(session, metered.estate, number="B2")
    session.commit()
    client = _client(app, agent)
    url = f"/admin/estates/{metered.estate.id}/tariff-classes"
    assert _post(client, url, action="create", code="PME", name="PME").status_code == 302
    created = session.scalar(select(TariffClass).where(TariffClass.code == "pme"))
    assert created is not None and tariff_classes.find_default(session, metered.estate.id) is not None
    taken = _post(client, url, action="create", code="pme", name="Again")
    assert taken.status_code == 400 and "already has a class with the code pme" in taken.get_data(as_text=True)
    assert _post(client, url, action="rename", class_id=str(created.id), name="PME (small business)").status_code == 302
    response = _post(client, url, action="assign", class_id=str(created.id),
                     unit_ids=[str(metered.unit.id), str(second.id)])
    assert response.status_code == 302
    session.expire_all()
    assert {u.number: u.tariff_class_id for u in session.scalars(select(Unit).where(
        Unit.estate_id == metered.estate.id))} == {metered.unit.number: created.id, "B2": created.id}
    rows = session.scalars(select(AuditLog).where(AuditLog.action == "unit.tariff_class")
                           .order_by(AuditLog.id)).all()
    assert [(r.old["tariff_class"], r.new["tariff_class"]) for r in rows] == [("standard", "pme")] * 2
    assert {r.actor_user_id for r in rows} == {agent.id}
    assert session.scalar(select(AuditLog.old).where(AuditLog.action == "tariff_class.rename")) == {"name": "PME"}
    page = client.get(url).get_data(as_text=True)
    assert "PME (small business)" in page and ">2</td>" in page


def test_the_unit_slot_shows_and_changes_the_units_class(session, metered, pme, app):
    pme_class, shop, _, _ = pme
    agent = make_user(session, "agent", estate=metered.estate)
    session.commit()
    client = _client(app, agent)
    page = client.get(f"/admin/units/{shop.id}/tariff-class").get_data(as_text=True)
    assert '<strong class="tariff-class">PME (small business)</strong>' in page
    default = tariff_classes.find_default(session, metered.estate.id)
    token = csrf_from(page)
    response = client.post(f"/admin/units/{shop.id}/tariff-class", data={"class_id": str(default.id), "csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Standard</strong> (the estate's default class)" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Unit, shop.id).tariff_class_id is None
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "unit.tariff_class")
                            .order_by(AuditLog.id.desc())).first()
    assert (audit.old["tariff_class"], audit.new["tariff_class"]) == ("pme", "standard")


def test_an_agent_of_another_estate_gets_404_and_changes_nothing(session, metered, pme, app):
    pme_class, shop, _, _ = pme
    other = make_estate_with_wallet(session)
    outsider = make_user(session, "agent", estate=other.estate)
    session.commit()
    client = _client(app, outsider)
    url = f"/admin/estates/{metered.estate.id}/tariff-classes"
    assert client.get(url).status_code == 404
    assert client.get(f"/admin/units/{shop.id}/tariff-class").status_code == 404
    default = tariff_classes.find_default(session, metered.estate.id)
    assert _post(client, url, action="assign", class_id=str(default.id), unit_ids=[str(shop.id)]).status_code == 404
    assert _post(client, f"/admin/units/{shop.id}/tariff-class", class_id=str(default.id)).status_code == 404
    # Its own estate's page refuses another estate's class and units (400, field-keyed).
    own = f"/admin/estates/{other.estate.id}/tariff-classes"
    refused = _post(client, own, action="assign", class_id=str(pme_class.id), unit_ids=[str(other.unit.id)])
    assert refused.status_code == 400 and "tariff classes" in refused.get_data(as_text=True)
    tariff_classes.create_class(session, other.estate, "b", "B class")
    b_class = session.scalar(select(TariffClass).where(TariffClass.code == "b"))
    refused = _post(client, own, action="assign", class_id=str(b_class.id), unit_ids=[str(shop.id)])
    assert refused.status_code == 400 and "not Estate" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(Unit, shop.id).tariff_class_id == pme_class.id


def test_class_errors_are_field_keyed_billing_errors(session, metered):
    with pytest.raises(tariff_classes.InvalidClassCode) as refused:
        tariff_classes.create_class(session, metered.estate, "Not a code!", "")
    assert set(refused.value.errors) == {"code", "name"} and isinstance(refused.value, BillingError)
    with pytest.raises(tariff_classes.UnknownUnits):
        tariff_classes.assign_class(session, metered.estate, [], tariff_classes.default_class(session, metered.estate).id)


def test_the_staff_tariff_form_offers_the_estates_classes(session, metered, pme, staff_client):
    pme_class = pme[0]
    page = staff_client.get(f"/staff/tariffs/new?estate_id={metered.estate.id}").get_data(as_text=True)
    assert f'<option value="{pme_class.id}"' in page and "PME (small business)" in page
    put_setting(session, schedule.NOTICE_DAYS_SETTING, 0, metered.estate.id)
    session.commit()
    effective = utcnow().astimezone(metered.estate.tz).date() + timedelta(days=3)
    token = csrf_from(page)
    response = staff_client.post("/staff/tariffs", data={
        "estate_id": metered.estate.id, "tariff_class_id": pme_class.id, "utility": "electricity", "kind": "flat",
        "rate": "3.30", "effective_from": effective.isoformat(), "csrf_token": token})
    assert response.status_code == 302
    version = session.scalar(select(TariffVersion).order_by(TariffVersion.id.desc()))
    assert version.tariff_class_id == pme_class.id
    listing = staff_client.get("/staff/tariffs").get_data(as_text=True)
    assert '<td data-label="Tariff class">PME (small business)</td>' in listing
    report_page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "PME (small business) units" in report_page and "SHOP1" in report_page


TEXT = st.one_of(st.text(max_size=60), st.integers(min_value=-2**70, max_value=2**70).map(str),
                 st.sampled_from(["", "0", "1", "standard", "pme", " 1 ", "9" * 30, "1e9", "null"]))


@pytest.fixture
def agent_client(session, metered, app):
    agent = make_user(session, "agent", estate=metered.estate)
    session.commit()
    return _client(app, agent)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(["create", "rename", "assign", "", "drop"]), code=TEXT, name=TEXT,
       class_id=TEXT, unit_ids=st.lists(TEXT, max_size=4), slot=st.booleans())
def test_fuzzing_the_class_forms_never_answers_500(session, metered, agent_client, action, code, name, class_id,
                                                    unit_ids, slot):
    token = csrf_from(agent_client.get("/notifications").get_data(as_text=True))
    if slot:
        url = f"/admin/units/{metered.unit.id}/tariff-class"
        data = {"class_id": class_id, "csrf_token": token}
    else:
        url = f"/admin/estates/{metered.estate.id}/tariff-classes"
        data = MultiDict([("action", action), ("code", code), ("name", name), ("class_id", class_id),
                          ("csrf_token", token)] + [("unit_ids", u) for u in unit_ids])
    response = agent_client.post(url, data=data)
    assert response.status_code in (200, 302, 400), (url, data, response.status_code)
