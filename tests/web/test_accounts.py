"""People's own accounts (X6, issue 14 item 6): forgot password, My account, deactivated logins."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.models import BudgetAlertSetting, Notification, User
from tests.helpers import csrf_from, page_token, sign_in

LINK = re.compile(r"https?://[^\s]+(/reset-password/[^\s]+)")


def _reset_mails(s, email):
    return s.scalars(select(Notification).where(Notification.template == "password_reset",
                                                Notification.to_address == email)).all()


def _ask(client, email):
    token = page_token(client, "/forgot-password")
    return client.post("/forgot-password", data={"email": email, "csrf_token": token})


def test_forgot_password_answers_the_same_for_an_unknown_address(world, new_client, committed):
    known = _ask(new_client(), world.emails["tenant"].upper())
    unknown = _ask(new_client(), "nobody-at-all@example.com")
    assert known.status_code == unknown.status_code == 200
    def strip(response):  # CSRF tokens differ per session
        return re.sub(r'(value="|X-CSRFToken": ")[^"]+"', "", response.get_data(as_text=True))
    assert strip(known) == strip(unknown)
    assert "If that address has a Meterwise login" in known.get_data(as_text=True)
    with committed() as s:
        assert len(_reset_mails(s, world.emails["tenant"])) == 1
        assert not s.scalars(select(Notification).where(Notification.to_address == "nobody-at-all@example.com")).all()


def _link_for(committed, email) -> str:
    with committed() as s:
        body = _reset_mails(s, email)[-1].body
    return LINK.search(body).group(1)


def test_the_reset_link_works_once_and_ends_other_sessions(world, new_client, login, committed):
    email = world.emails["tenant"]
    elsewhere = login(email)  # signed in on another device
    _ask(new_client(), email)
    path = _link_for(committed, email)
    client = new_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"password": "a-brand-new-pass", "confirm": "a-brand-new-pass",
                                       "csrf_token": token})
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/tenant/"
    again = new_client().get(path)
    assert again.status_code == 400 and "already been used" in again.get_data(as_text=True)
    assert elsewhere.get("/tenant/").status_code == 302  # that session ended
    assert sign_in(new_client(), email, "a-brand-new-pass").status_code == 302


def test_an_expired_or_tampered_reset_link_is_refused(world, new_client, committed, app, monkeypatch):
    email = world.emails["owner"]
    _ask(new_client(), email)
    path = _link_for(committed, email)
    assert new_client().get(path[:-3] + "xyz").status_code == 400
    monkeypatch.setitem(app.config, "PASSWORD_RESET_MAX_AGE_SECONDS", -1)
    response = new_client().get(path)
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)


def test_forgot_password_is_rate_limited_per_address(world, new_client):
    statuses = [_ask(new_client(), world.emails["family"]).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]


def test_a_deactivated_login_is_signed_out_at_once_and_cannot_sign_in(world, login, new_client, committed):
    with committed() as s:
        tenant = s.scalar(select(User).where(User.email == world.emails["tenant"]))
        tenant.person.estate_id = world.estate1
        person_id = tenant.person_id
    victim = login(world.emails["tenant"])
    assert victim.get("/tenant/").status_code == 200
    staff = login(world.emails["staff"])
    page = f"/admin/estates/{world.estate1}/people/{person_id}"
    text = staff.get(page).get_data(as_text=True)
    assert "Deactivate the login" in text
    response = staff.post(page + "/login", data={"active": "0", "csrf_token": csrf_from(text)})
    assert response.status_code == 302
    assert victim.get("/tenant/").status_code == 302  # sent to sign in
    assert sign_in(new_client(), world.emails["tenant"]).status_code == 401
    assert "Deactivated" in staff.get(page).get_data(as_text=True)
    response = staff.post(page + "/login", data={"active": "1", "csrf_token": csrf_from(text)})
    assert sign_in(new_client(), world.emails["tenant"]).status_code == 302


def test_my_account_edits_phone_email_and_alert_channels(world, login, committed, new_client):
    with committed() as s:
        user = s.scalar(select(User).where(User.email == world.emails["tenant"]))
        setting = BudgetAlertSetting(user_id=user.id, unit_id=world.unit_a, thresholds={}, frequency="daily",
                                     channels=["in_app"])
        s.add(setting)
        s.flush()
        setting_id = setting.id
    client = login(world.emails["tenant"])
    page = client.get("/account").get_data(as_text=True)
    assert "My account" in page and f'name="channels_{setting_id}"' in page
    token = csrf_from(page)
    response = client.post("/account", data={"csrf_token": token, "email": world.emails["tenant"], "phone": "",
                                              f"channels_{setting_id}": ["in_app", "sms"]})
    assert response.status_code == 400 and "SMS needs a phone number" in response.get_data(as_text=True)
    response = client.post("/account", data={"csrf_token": token, "email": world.emails["tenant"],
                                              "phone": "not a phone", f"channels_{setting_id}": "in_app"})
    assert response.status_code == 400 and "Enter a phone number of ZA" in response.get_data(as_text=True)
    response = client.post("/account", data={"csrf_token": token, "email": world.emails["staff"],
                                              "phone": "", f"channels_{setting_id}": "in_app"})
    assert response.status_code == 400 and "Another login already signs in" in response.get_data(as_text=True)
    response = client.post("/account", data={"csrf_token": token, "email": "Moved@Example.com",
                                              "phone": "082 555 1234", f"channels_{setting_id}": ["sms", "email"]})
    assert response.status_code == 302
    with committed() as s:
        user = s.scalar(select(User).where(User.email == "moved@example.com"))
        assert user.person.phone == "+27825551234" and user.person.email == "moved@example.com"
        assert s.get(BudgetAlertSetting, setting_id).channels == ["sms", "email"]
    assert sign_in(new_client(), "moved@example.com").status_code == 302


def test_the_top_bar_links_my_account_and_the_login_page_links_forgot_password(world, login, new_client):
    assert 'href="/account"' in login(world.emails["owner"]).get("/owner/").get_data(as_text=True)
    assert 'href="/forgot-password"' in new_client().get("/login").get_data(as_text=True)


# --- fuzz: the person form never answers with a server error ---------------------------------

_clients: dict = {}


def _agent_once(login, email):
    key = (id(login), email)
    if key not in _clients:
        _clients.clear()
        _clients[key] = login(email)
    return _clients[key]


text = st.text(max_size=60) | st.sampled_from(["", "0821234567", "+266 5775 5403", "a@b.co", "x@@y", "\x00",
                                               "9" * 40, "Zoë 日本", "=cmd|' /C calc'!A0"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=text, email=text, phone=text, person_id=st.text(max_size=12), start=st.text(max_size=12))
def test_the_person_forms_never_answer_with_a_server_error(world, login, name, email, phone, person_id, start):
    client = _agent_once(login, world.emails["agent"])
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    data = {"csrf_token": token, "full_name": name, "email": email, "phone": phone}
    response = client.post(f"/admin/estates/{world.estate1}/people", data=data)
    assert response.status_code in (302, 400), (data, response.status_code)
    response = client.post(f"/admin/units/{world.unit_a}/people/tenants",
                           data={**data, "person_id": person_id, "start": start})
    assert response.status_code in (200, 400), (data, response.status_code)
    response = client.post("/account", data={"csrf_token": token, "email": email, "phone": phone,
                                             "channels_" + (person_id if person_id.isdigit() else "1"): name})
    assert response.status_code in (302, 400), (email, phone, response.status_code)


@pytest.fixture(autouse=True)
def _forget_clients():
    yield
    _clients.clear()
