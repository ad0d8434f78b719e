"""The estate pages: staff create and edit estates; agents read their estate's settings; no 500s."""
from __future__ import annotations

import re
from decimal import Decimal

from flask import url_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.models import AuditLog, Estate, RoleGrant, User
from tests import factories
from tests.helpers import csrf_from

NEW = "/admin/estates/new"
GOOD = {"code": "NEW-1", "name": "Mopane Village", "country": "LS", "currency": "LSL",
        "timezone": "Africa/Maseru", "fiscal_year_start_month": "4", "wallet_denomination": "currency",
        "minimum_activation_amount": "20.00", "features": "1", "feature_statements": "1",
        "setting_tariff_notice_days": "21", "setting_mpesa_paybill": ""}


def _settings_url(estate_id: int) -> str:
    return f"/admin/estates/{estate_id}/settings"


def _post(client, url: str, data: dict):
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def _error_beside(page: str, field: str) -> str:
    """The message shown right under a field (its `<field>-error` paragraph)."""
    found = re.search(rf'id="{re.escape(field)}-error">([^<]*)<', page)
    assert found, f"no message beside {field}"
    return found.group(1)


def _estate(committed, code: str) -> Estate | None:
    with committed() as s:
        estate = s.scalar(select(Estate).where(Estate.code == code))
        if estate is not None:
            s.expunge(estate)
        return estate


def test_staff_create_an_estate_from_the_page(world, login, committed):
    staff = login(world.emails["staff"])
    index = staff.get("/admin/").get_data(as_text=True)
    assert f'href="{NEW}"' in index
    form = staff.get(NEW).get_data(as_text=True)
    assert 'name="currency"' in form and "Lesotho Loti" in form and "Tariff notice (days)" in form
    response = _post(staff, NEW, GOOD)
    estate = _estate(committed, "NEW-1")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/estates/{estate.id}")
    assert (estate.currency, estate.currency_minor_units, estate.minimum_activation_amount) == ("LSL", 2, Decimal("20.00"))
    overview = staff.get(f"/admin/estates/{estate.id}").get_data(as_text=True)
    assert "Mopane Village (NEW-1) is created." in overview
    assert re.search(r"<dt>Tariff notice \(days\)</dt><dd>21</dd>", overview), "key settings on the overview"
    settings_page = staff.get(_settings_url(estate.id)).get_data(as_text=True)
    assert 'value="21"' in settings_page, "the estate's own value is in the form"
    assert 'placeholder="50000 (default)"' in settings_page, "an unset setting shows what applies"


def test_bad_input_comes_back_with_the_message_beside_the_field(world, login, committed):
    staff = login(world.emails["staff"])
    response = _post(staff, NEW, {**GOOD, "code": "bad code", "fiscal_year_start_month": "13",
                                  "setting_brand_colour": "pink"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved" in page
    assert "1 to 16 letters" in _error_beside(page, "code")
    assert "1 to 12" in _error_beside(page, "fiscal_year_start_month")
    assert "is not a colour" in _error_beside(page, "setting_brand_colour")
    assert 'value="Mopane Village"' in page, "what was typed stays in the form"
    assert _estate(committed, "BAD CODE") is None


def test_staff_edit_settings_and_every_change_is_audited(world, login, committed):
    staff = login(world.emails["staff"])
    url = _settings_url(world.estate2)
    form = staff.get(url).get_data(as_text=True)
    assert 'id="estate-form"' in form
    response = _post(staff, url, {"name": "Baobab Court II", "features": "1", "feature_statements": "1",
                                  "setting_water_credit_limit": "75", "setting_loss_threshold_percent": "12.5"})
    assert response.status_code == 302
    page = staff.get(url).get_data(as_text=True)
    assert "3 changes saved." in page or "4 changes saved." in page
    with committed() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.estate_id == world.estate2,
                                                AuditLog.action.in_(("estate.update", "setting.put")))).all()
        seen = sorted((r.action, tuple(sorted((r.old or {}).items())), tuple(sorted((r.new or {}).items()))) for r in rows)
    assert ("setting.put", (("water_credit_limit", None),), (("water_credit_limit", "75"),)) in seen
    assert ("setting.put", (("loss_threshold_percent", None),), (("loss_threshold_percent", "12.5"),)) in seen
    update = [row for row in seen if row[0] == "estate.update"]
    assert update and ("name", "Baobab Court") in update[0][1] and ("name", "Baobab Court II") in update[0][2]


def test_the_currency_shows_why_it_is_locked_after_a_posting(world, login):
    staff = login(world.emails["staff"])
    # The world's estates have wallets; a top-up makes estate 1 one with postings.
    from app.extensions import db
    from app.models import Account

    with staff.application.app_context():
        pocket = db.session.scalar(select(Account).where(Account.estate_id == world.estate1, Account.kind == "pocket"))
        factories.make_topup(db.session, pocket, "5.00")
        db.session.commit()
        db.session.remove()
    page = staff.get(_settings_url(world.estate1)).get_data(as_text=True)
    assert 'name="currency"' not in page and 'name="wallet_denomination"' not in page
    assert re.search(r'id="currency-locked">Fixed: the ledger already has 2 postings in ZAR', page)
    response = _post(staff, _settings_url(world.estate1), {"currency": "USD"})
    assert response.status_code == 400
    assert "Fixed: the ledger already has" in _error_beside(response.get_data(as_text=True), "currency")


def test_agents_read_their_estates_settings_and_cannot_change_them(world, login, committed):
    agent = login(world.emails["agent"])
    page = agent.get(_settings_url(world.estate1))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="estate-form"' not in text and "Tariff notice (days)" in text and "30" in text
    assert agent.get(_settings_url(world.estate2)).status_code == 404
    assert agent.get(NEW).status_code == 404
    assert _post(agent, NEW, GOOD).status_code == 404
    assert _post(agent, _settings_url(world.estate1), {"name": "Taken over"}).status_code == 404
    with committed() as s:
        assert s.get(Estate, world.estate1).name == "Acacia Gardens"
    assert _estate(committed, "NEW-1") is None
    assert "New estate" not in agent.get("/admin/").get_data(as_text=True)


def test_a_new_estate_without_units_renders_on_every_page_that_lists_estates(app, world, login, committed):
    staff = login(world.emails["staff"])
    assert _post(staff, NEW, GOOD).status_code == 302
    estate = _estate(committed, "NEW-1")
    with committed() as s:
        for role in ("agent", "utility", "body_corporate", "owner"):
            user_id = s.scalar(select(User.id).where(User.email == world.emails[role]))
            s.add(RoleGrant(user_id=user_id, role=role, estate_id=estate.id))
    # Every page that takes only an estate id, as staff, and every page without parameters.
    with app.test_request_context():
        urls = [url_for(rule.endpoint, estate_id=estate.id) for rule in app.url_map.iter_rules()
                if "GET" in rule.methods and set(rule.arguments) == {"estate_id"}
                and not rule.rule.startswith("/api/")]  # the integration API signs in with keys, not pages
        urls += [url_for(rule.endpoint) for rule in app.url_map.iter_rules()
                 if "GET" in rule.methods and not rule.arguments and rule.endpoint.split(".")[0] in
                 ("staff", "admin", "agent", "utility", "body_corporate", "owner")]
    assert _settings_url(estate.id) in urls and "/staff/" in urls
    for url in urls:
        response = staff.get(url)
        assert response.status_code == 200, url
    for role in ("agent", "utility", "body_corporate", "owner"):
        client = login(world.emails[role])
        page = client.get(f"/{role}/" if role != "body_corporate" else "/body-corporate/")
        assert page.status_code in (200, 302), (role, page.status_code)
        for url in urls:
            if url.startswith(f"/{role.replace('_', '-')}/") or (role == "agent" and url.startswith("/admin/estates/")):
                assert client.get(url).status_code in (200, 404), (role, url)


# --- no 500 whatever is typed --------------------------------------------------------------

FIELDS = ("code", "name", "country", "currency", "timezone", "fiscal_year_start_month",
          "wallet_denomination", "minimum_activation_amount", "feature_credit_control",
          "setting_payment_max_amount", "setting_mpesa_senders", "setting_water_credit_limit",
          "setting_tariff_notice_days", "setting_brand_colour", "setting_loss_threshold_percent",
          "setting_sparkmeter_customer_code", "setting_chirpstack_application_id", "setting_mpesa_paybill")
TYPED = st.one_of(st.text(max_size=30), st.sampled_from(["", "0", "-1", "1e9", "9" * 40, "ZAR", "XOF", "LS",
                                                         "{unit}", "{0}", "{", "#123456", "13", "NaN", "\x00"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(FIELDS), TYPED, max_size=8), edit=st.booleans())
def test_the_estate_forms_never_answer_500(world, login, values, edit):
    staff = _fuzz_client(world, login)
    url = _settings_url(world.estate2) if edit else NEW
    data = values if edit else {**GOOD, "code": "", **values}
    response = _post(staff, url, data)
    assert response.status_code in (302, 400), (url, data, response.status_code)


_clients: dict = {}


def _fuzz_client(world, login):
    """One signed-in staff client per world (hypothesis runs many examples in one test)."""
    key = world.emails["staff"]
    if key not in _clients:
        _clients.clear()
        _clients[key] = login(key)
    return _clients[key]
