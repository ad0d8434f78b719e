"""Case notes on units and people (issue 14 item 7): staff and the estate's agents read and
add them; another estate's agent, or a person of another estate, is a 404; bad input is a 400."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, Estate, Tenancy, Unit, User
from app.models.corrections import CaseNote
from tests import factories
from tests.helpers import csrf_from, make_login
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: F401


@pytest.fixture
def people(committed, world):
    """A tenant of unit A (estate 1), a person of estate 2, and an agent of estate 2."""
    with committed() as s:
        tenant = s.scalar(select(User).where(User.email == world.emails["tenant"])).person_id
        stranger = factories.make_user(s, "tenant", unit=s.get(Unit, world.unit_b), password=None).person
        s.add(Tenancy(unit_id=world.unit_b, person_id=stranger.id, move_in=date(2024, 1, 1)))
        agent_b = make_login(s, "agent", estate=s.get(Estate, world.estate2)).email
        return {"tenant": tenant, "stranger": stranger.id, "agent_b": agent_b}


def _add(client, url: str, body: str):
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, "body": body}, headers={"HX-Request": "true"})


def test_agent_adds_and_reads_notes_on_their_estates_unit_and_person(app, world, people, login):
    agent = login(world.emails["agent"])
    unit_url = f"/admin/units/{world.unit_a}/notes"
    added = _add(agent, unit_url, "Geyser replaced\non 3 Nov.")
    assert added.status_code == 200
    html = added.get_data(as_text=True)
    assert 'id="case-notes"' in html and "<html" not in html  # the component, for htmx
    assert "Geyser replaced\non 3 Nov." in html and "Note added" in html
    person_url = f"/admin/estates/{world.estate1}/people/{people['tenant']}/notes"
    assert _add(agent, person_url, "Prefers SMS.").status_code == 200
    staff = login(world.emails["staff"])
    assert "Prefers SMS." in staff.get(person_url).get_data(as_text=True)
    assert "Geyser replaced" in staff.get(unit_url).get_data(as_text=True)
    assert "Prefers SMS." not in staff.get(unit_url).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action == "case_note.added")) == 2
        db.session.remove()


def test_another_estates_agent_and_people_are_404(app, world, people, login):
    agent_a, agent_b = login(world.emails["agent"]), login(people["agent_b"])
    assert agent_b.get(f"/admin/units/{world.unit_a}/notes").status_code == 404
    assert agent_b.get(f"/admin/estates/{world.estate1}/people/{people['tenant']}/notes").status_code == 404
    # A person of estate 2 named under estate 1's address: still someone else's.
    assert agent_a.get(f"/admin/estates/{world.estate1}/people/{people['stranger']}/notes").status_code == 404
    assert agent_b.get(f"/admin/estates/{world.estate2}/people/{people['stranger']}/notes").status_code == 200
    token = csrf_from(agent_b.get(f"/admin/units/{world.unit_b}/notes").get_data(as_text=True))
    assert agent_b.post(f"/admin/units/{world.unit_a}/notes",
                        data={"csrf_token": token, "body": "sneaky"}).status_code == 404
    tenant = login(world.emails["tenant"])
    assert tenant.get(f"/admin/units/{world.unit_a}/notes").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CaseNote)) == 0
        db.session.remove()


def test_an_empty_or_overlong_note_is_refused_next_to_its_field(world, login):
    agent = login(world.emails["agent"])
    url = f"/admin/units/{world.unit_a}/notes"
    empty = _add(agent, url, "   ")
    assert empty.status_code == 400 and "Write the note first." in empty.get_data(as_text=True)
    long = _add(agent, url, "x" * 4001)
    assert long.status_code == 400 and "under 4000 characters" in long.get_data(as_text=True)


_CLIENTS: dict = {}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(max_size=5000), person=st.integers(min_value=0, max_value=2**40),
       unit=st.integers(min_value=0, max_value=2**40))
def test_the_note_forms_never_fail_with_a_500(world, login, body, person, unit):
    email = world.emails["agent"]
    if email not in _CLIENTS:
        _CLIENTS.clear()
        _CLIENTS[email] = login(email)
    client = _CLIENTS[email]
    token = csrf_from(client.get(f"/admin/units/{world.unit_a}/notes").get_data(as_text=True))
    for url in (f"/admin/units/{unit}/notes", f"/admin/units/{world.unit_a}/notes",
                f"/admin/estates/{world.estate1}/people/{person}/notes"):
        response = client.post(url, data={"csrf_token": token, "body": body})
        assert response.status_code in (200, 400, 404), (url, response.status_code)
        assert client.get(url).status_code in (200, 404)


def test_the_unit_and_person_pages_slots_load_the_notes_component(app, world, people):
    from flask import render_template
    from app.models import Person
    with app.test_request_context():
        unit = db.session.get(Unit, world.unit_a)
        html = render_template("admin/_unit_slot_notes.html", unit=unit, estate=unit.estate)
        assert f'hx-get="/admin/units/{unit.id}/notes"' in html and 'hx-trigger="load"' in html
        assert f'href="/admin/units/{unit.id}/notes"' in html  # without JavaScript: a plain link
        person = db.session.get(Person, people["tenant"])
        html = render_template("admin/_person_slot_notes.html", person=person, estate=unit.estate)
        assert f'hx-get="/admin/estates/{world.estate1}/people/{person.id}/notes"' in html
        db.session.remove()
