"""Role grants, invites, tenancies and ownerships from the administration pages (X6)."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.estates import access
from app.estates.access import AlreadyGranted, GrantRefused, NoEmail, TenancyRefused
from app.estates.people import create_person
from app.models import AuditLog, Notification, Person, RoleGrant, Tenancy, User
from tests import factories
from tests.helpers import csrf_from


@pytest.fixture
def two(session):
    """Estate A with an agent and a unit, estate B with a unit; a person registered to A."""
    a, b = factories.make_estate(session, country="ZA"), factories.make_estate(session, country="LS")
    unit_a, unit_b = factories.make_unit(session, a), factories.make_unit(session, b)
    agent = factories.make_user(session, "agent", estate=a, password=None)
    staff = factories.make_user(session, "staff", password=None)
    session.commit()
    person = create_person(session, a, {"full_name": "Lindiwe Dube", "email": "lindiwe@example.com"})
    return a, b, unit_a, unit_b, agent, staff, person


def invites_to(session, email):
    return session.scalars(select(Notification).where(Notification.template == "invite",
                                                      Notification.to_address == email)).all()


def test_a_grant_makes_a_login_without_password_and_emails_the_invite(session, two):
    a, _b, unit_a, _ub, agent, _s, person = two
    result = access.grant_role(session, agent, person, "tenant", unit=unit_a)
    assert result.login_created and result.user.password_hash is None and result.user.person_id == person.id
    assert "/invite/" in result.invite_link
    [mail] = invites_to(session, "lindiwe@example.com")
    assert mail.channel == "email" and result.invite_link in mail.body and a.name in mail.body
    assert session.scalar(select(AuditLog).where(AuditLog.action == "role.granted")).new["role"] == "tenant"
    with pytest.raises(AlreadyGranted):
        access.grant_role(session, agent, person, "tenant", unit=unit_a)
    session.rollback()
    access.resend_invite(session, agent, person, a)
    assert len(invites_to(session, "lindiwe@example.com")) == 2


def test_an_agent_cannot_grant_on_another_estate_nor_staff_nor_the_wrong_role_for_the_place(session, two):
    a, b, unit_a, unit_b, agent, staff, person = two
    with pytest.raises(GrantRefused, match="estates you administer"):
        access.grant_role(session, agent, person, "agent", estate=b)
    session.rollback()
    with pytest.raises(GrantRefused, match="estates you administer"):
        access.grant_role(session, agent, person, "tenant", unit=unit_b)
    session.rollback()
    for actor in (agent, staff):
        with pytest.raises(GrantRefused, match="Staff access"):
            access.grant_role(session, actor, person, "staff", estate=a)
        session.rollback()
    with pytest.raises(GrantRefused, match="On a unit"):
        access.grant_role(session, agent, person, "agent", unit=unit_a)
    session.rollback()
    with pytest.raises(GrantRefused, match="On an estate"):
        access.grant_role(session, agent, person, "tenant", estate=a)
    session.rollback()
    assert session.scalar(select(RoleGrant.id).where(RoleGrant.role != "staff", RoleGrant.role != "agent")) is None
    # Staff grant anywhere.
    assert access.grant_role(session, staff, person, "utility", estate=b).grant.estate_id == b.id


def test_a_person_without_email_gets_a_tenancy_but_no_login(session, two):
    a, _b, unit_a, _ub, agent, _s, _p = two
    phone_only = create_person(session, a, {"full_name": "Phone Only", "phone": "0821234567"})
    with pytest.raises(NoEmail):
        access.grant_role(session, agent, phone_only, "tenant", unit=unit_a)
    session.rollback()
    tenancy, grant = access.add_tenant(session, agent, unit_a, phone_only, date(2026, 1, 1))
    assert grant is None and tenancy.move_out is None
    assert session.scalar(select(User.id).where(User.person_id == phone_only.id)) is None


def test_add_tenant_with_a_new_person_then_end_the_tenancy_takes_access_away(session, two):
    a, _b, unit_a, _ub, agent, _s, _p = two
    tenancy, result = access.add_tenant(session, agent, unit_a, {"full_name": "New Tenant",
                                                                  "email": "new@example.com"}, date(2026, 1, 1))
    person = session.get(Person, tenancy.person_id)
    assert person.estate_id == a.id and result.grant.unit_id == unit_a.id and invites_to(session, "new@example.com")
    with pytest.raises(TenancyRefused):
        access.add_tenant(session, agent, unit_a, person, date(2026, 2, 1))  # already renting then
    session.rollback()
    with pytest.raises(TenancyRefused, match="before the start"):
        access.end_tenancy(session, agent, tenancy, date(2025, 12, 31))
    session.rollback()
    with pytest.raises(TenancyRefused, match="today"):
        access.end_tenancy(session, agent, tenancy, date.today() + timedelta(days=1))
    session.rollback()
    access.end_tenancy(session, agent, tenancy, date.today())
    assert tenancy.move_out == date.today()
    assert session.scalar(select(RoleGrant.id).where(RoleGrant.unit_id == unit_a.id)) is None
    assert {r.action for r in session.scalars(select(AuditLog))} >= {"tenancy.created", "tenancy.ended",
                                                                     "role.revoked", "person.created"}


def test_add_and_end_an_ownership(session, two):
    _a, _b, unit_a, _ub, agent, _s, person = two
    ownership, result = access.add_owner(session, agent, unit_a, person, date(2020, 5, 1), invite=False)
    assert result.grant.role == "owner" and result.invite_link is None
    access.end_ownership(session, agent, ownership, date(2026, 1, 1))
    assert ownership.until == date(2026, 1, 1)
    assert session.scalar(select(RoleGrant.id).where(RoleGrant.role == "owner")) is None


def test_deactivating_a_login_is_for_staff_and_ends_its_sessions(session, two):
    _a, _b, unit_a, _ub, agent, staff, person = two
    user = access.grant_role(session, agent, person, "tenant", unit=unit_a).user
    version = user.session_version
    with pytest.raises(GrantRefused):
        access.set_login_active(session, agent, user, False)
    session.rollback()
    assert access.set_login_active(session, staff, user, False)
    session.refresh(user)
    assert not user.active and user.session_version == version + 1
    assert access.set_login_active(session, staff, user, True) and user.active


# --- through the pages ------------------------------------------------------------------------

def _token(client, url):
    return csrf_from(client.get(url).get_data(as_text=True))


def test_agent_pages_grant_invite_and_answer_404_for_another_estate(world, login, committed, app):
    from app.models import Estate

    with committed() as s:
        estate1, estate2 = s.get(Estate, world.estate1), s.get(Estate, world.estate2)
        mine = create_person(s, estate1, {"full_name": "Mine", "email": "mine@example.com"}).id
        theirs = create_person(s, estate2, {"full_name": "Theirs", "email": "theirs@example.com"}).id
    agent = login(world.emails["agent"])
    page = f"/admin/estates/{world.estate1}/people/{mine}"
    token = _token(agent, page)
    response = agent.post(page + "/grants", data={"csrf_token": token, "role": "owner",
                                                  "place": str(world.unit_a), "invite": "1"})
    assert response.status_code == 302
    text = agent.get(page).get_data(as_text=True)
    assert "An invite was emailed to mine@example.com" in text and "Invited (no password yet)" in text
    # Staff from this page: refused with the reason by the field.
    response = agent.post(page + "/grants", data={"csrf_token": token, "role": "staff", "place": "estate"})
    assert response.status_code == 400 and "Staff access is not given" in response.get_data(as_text=True)
    # Another estate's person, or this person under another estate, or a unit there: 404.
    assert agent.get(f"/admin/estates/{world.estate2}/people/{theirs}").status_code == 404
    assert agent.get(f"/admin/estates/{world.estate1}/people/{theirs}").status_code == 404
    assert agent.post(f"/admin/estates/{world.estate2}/people/{theirs}/grants",
                      data={"csrf_token": token, "role": "agent", "place": "estate"}).status_code == 404
    assert agent.post(page + "/grants", data={"csrf_token": token, "role": "tenant",
                                              "place": str(world.unit_b)}).status_code == 400
    assert agent.post(f"/admin/units/{world.unit_b}/people/grants",
                      data={"csrf_token": token, "role": "tenant", "person_id": str(mine)}).status_code == 404
    # Agents do not deactivate logins.
    assert agent.post(page + "/login", data={"csrf_token": token, "active": "0"}).status_code == 404
    with committed() as s:
        assert s.scalar(select(RoleGrant.id).where(RoleGrant.unit_id == world.unit_b,
                                                   RoleGrant.role == "tenant",
                                                   RoleGrant.user_id.in_(select(User.id).where(
                                                       User.email == "mine@example.com")))) is None
        assert len(invites_to(s, "mine@example.com")) == 1


def test_people_list_search_filter_and_exports(world, login, committed):
    from app.models import Estate

    with committed() as s:
        estate1 = s.get(Estate, world.estate1)
        create_person(s, estate1, {"full_name": "Zoë Phone", "phone": "0821234567"})
    agent = login(world.emails["agent"])
    url = f"/admin/estates/{world.estate1}/people"
    text = agent.get(url + "?q=zo").get_data(as_text=True)
    assert "Zoë Phone" in text and "+27821234567" in text and "No login" in text
    assert "Zoë Phone" not in agent.get(url + "?role=tenant").get_data(as_text=True)
    csv = agent.get(url + "?format=csv")
    assert csv.mimetype == "text/csv" and "Zoë Phone" in csv.get_data(as_text=True)
    assert agent.get(url + "?format=pdf").mimetype == "application/pdf"
    token = _token(agent, url)
    response = agent.post(url, data={"csrf_token": token, "full_name": "Dup", "phone": "+27 82 123 4567"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "Zoë Phone already has this phone number" in body and "Open Zoë Phone" in body


def test_unit_people_component_adds_a_tenant_with_an_invite_and_ends_it(world, login, committed):
    agent = login(world.emails["agent"])
    url = f"/admin/units/{world.unit_a2}/people"
    token = _token(agent, url)
    today = date.today().isoformat()
    response = agent.post(url + "/tenants", data={"csrf_token": token, "person_id": "new", "full_name": "Neo Tenant",
                                                  "email": "neo@example.com", "start": today, "invite": "1"},
                          headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Neo Tenant" in body and "An invite was emailed to neo@example.com" in body
    assert "<html" not in body  # the component, not a page
    with committed() as s:
        tenancy = s.scalar(select(Tenancy).where(Tenancy.unit_id == world.unit_a2))
        assert invites_to(s, "neo@example.com")
        row_id = tenancy.id
    response = agent.post(url + "/tenants", data={"csrf_token": token, "person_id": "new", "start": "someday"})
    assert response.status_code == 400 and "YYYY-MM-DD" in response.get_data(as_text=True)
    response = agent.post(url + "/end", data={"csrf_token": token, "kind": "tenancy", "row_id": str(row_id),
                                              "end": today})
    assert response.status_code == 200 and "taken away" in response.get_data(as_text=True)
    assert agent.post(url + "/end", data={"csrf_token": token, "kind": "tenancy", "row_id": "99999999999",
                                          "end": today}).status_code == 404


def test_the_functions_the_pages_call_say_they_commit_once():
    from app.auth.account import save_account
    from app.auth.passwords import request_reset, reset_password
    from app.estates.people import create_person as create, update_own_contact, update_person

    functions = (create, update_person, update_own_contact, access.grant_role, access.resend_invite,
                 access.revoke_grant, access.add_tenant, access.add_owner, access.end_tenancy,
                 access.end_ownership, access.set_login_active, save_account, request_reset, reset_password)
    for function in functions:
        assert "commits once" in function.__doc__, function.__name__
