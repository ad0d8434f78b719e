"""Levy pages (B3) for a body-corporate user: define with a preview, run with a job panel, record payments."""
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.ledger.accounts import owner_pocket
from app.models import AuditLog, Person, UnitOwnership
from app.models.levies import LevyCharge, LevyDefinition
from app.periods import current_period
from tests.factories import make_estate, make_unit
from tests.helpers import csrf_from, make_login, sign_in


def _scheme(session):
    estate = make_estate(session, code="BCX", name="Scheme X")
    other = make_estate(session, code="BCY", name="Scheme Y")
    units = [make_unit(session, estate, number=n, floor_area_m2=a) for n, a in (("A1", "60"), ("A2", "90"))]
    for unit in units:
        person = Person(full_name=f"Owner {unit.number}")
        session.add(person)
        session.flush()
        session.add(UnitOwnership(unit_id=unit.id, person_id=person.id, since=date(2020, 1, 1)))
    user = make_login(session, "body_corporate", estate=estate)
    session.commit()
    return estate, other, units, user


def _form(token, **values):
    data = {"csrf_token": token, "name": "Admin levy", "amount": "1000.00", "frequency": "monthly",
            "allocation": "floor_area", "effective_from": "2025-01", "units": "all", "action": "save"}
    data.update(values)
    return data


def test_a_trustee_previews_saves_edits_and_runs_a_levy(session, client):
    estate, other, units, user = _scheme(session)
    sign_in(client, user.email)
    page = client.get(f"/body-corporate/estates/{estate.id}/levies/new")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    preview = client.post(f"/body-corporate/estates/{estate.id}/levies/new", data=_form(token, action="preview"))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "R 400.00" in html and "R 600.00" in html
    assert session.scalar(select(func.count(LevyDefinition.id))) == 0  # a preview saves nothing
    bad = client.post(f"/body-corporate/estates/{estate.id}/levies/new",
                      data=_form(token, name="", amount="abc", effective_from="2025-13"))
    assert bad.status_code == 400 and bad.get_data(as_text=True).count('class="field-error" id=') == 3
    saved = client.post(f"/body-corporate/estates/{estate.id}/levies/new", data=_form(token))
    assert saved.status_code == 302
    levy = session.scalar(select(LevyDefinition))
    edited = client.post(f"/body-corporate/estates/{estate.id}/levies/{levy.id}",
                         data=_form(token, amount="1500.00"))
    assert edited.status_code == 302
    session.expire_all()
    assert session.get(LevyDefinition, levy.id).amount == Decimal("1500.00")
    assert {a.action for a in session.scalars(select(AuditLog))} >= {"levy.created", "levy.changed"}

    month = current_period(estate.tz)
    run = client.post(f"/body-corporate/estates/{estate.id}/levies/run", data={"csrf_token": token, "month": month})
    assert run.status_code == 200 and "job-" in run.get_data(as_text=True)
    assert "job-finished" in run.headers.get("HX-Trigger", "")
    session.expire_all()
    assert [c.amount for c in session.scalars(select(LevyCharge).order_by(LevyCharge.unit_id))] == [
        Decimal("600.00"), Decimal("900.00")]
    refused = client.post(f"/body-corporate/estates/{estate.id}/levies/run",
                          data={"csrf_token": token, "month": "2099-01"})
    assert refused.status_code == 400 and "has not begun" in refused.get_data(as_text=True)
    listing = client.get(f"/body-corporate/estates/{estate.id}/levies").get_data(as_text=True)
    assert "Admin levy" in listing and "R 1\u202f500.00" in listing

    paid = client.post(f"/body-corporate/estates/{estate.id}/levies/payments",
                       data={"csrf_token": token, "unit_id": units[0].id, "amount": "600.00", "reference": "EFT9"})
    assert paid.status_code == 302
    session.expire_all()
    assert owner_pocket(session, units[0], "levy").balance == 0
    wrong = client.post(f"/body-corporate/estates/{estate.id}/levies/payments",
                        data={"csrf_token": token, "unit_id": "999999", "amount": "1", "reference": "x"})
    assert wrong.status_code == 400

    # Another scheme's levies are not there at all.
    assert client.get(f"/body-corporate/estates/{other.id}/levies").status_code == 404
    assert client.get(f"/body-corporate/estates/{other.id}/levies/{levy.id}").status_code == 404
    assert client.post(f"/body-corporate/estates/{other.id}/levies/run",
                       data={"csrf_token": token, "month": month}).status_code == 404


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(
    st.sampled_from(["name", "amount", "frequency", "charge_month", "allocation", "effective_from",
                     "effective_to", "units", "custom", "unit_ids", "action"]),
    st.text(max_size=30), max_size=8))
def test_any_levy_form_is_saved_or_refused_never_a_500(session, client, fields):
    estate = session.scalar(select(LevyDefinition.estate_id))  # noqa: F841 - nothing to look at: fresh each time
    from app.models import Estate, User
    found = session.scalar(select(Estate).where(Estate.code == "BCX"))
    if found is None:
        found = _scheme(session)[0]
    user = session.scalar(select(User).join(User.grants).where(User.email.like("body_corporate%")))
    with client.session_transaction() as browser:
        browser.clear()
    sign_in(client, user.email)
    token = csrf_from(client.get(f"/body-corporate/estates/{found.id}/levies/new").get_data(as_text=True))
    response = client.post(f"/body-corporate/estates/{found.id}/levies/new", data={"csrf_token": token, **fields})
    assert response.status_code in (200, 302, 400)
    run = client.post(f"/body-corporate/estates/{found.id}/levies/run",
                      data={"csrf_token": token, "month": fields.get("effective_from", "")})
    assert run.status_code in (200, 400)
