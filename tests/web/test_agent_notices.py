"""Agents' outage and maintenance notices (issue 15, item 7): preview the reach, send by SMS and email,
the list of sent notices; another estate's agent gets 404; CSRF; a hypothesis fuzz of the form."""
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.estates import notices
from app.models import AuditLog, Notification, Person, Tenancy
from app.models.notices import Notice
from tests import factories
from tests.helpers import csrf_from


@pytest.fixture
def notice_kit(app, committed):
    """Estate A: units A1, A2 (one tenant renting both, email and phone), B1 (phone only), B2 (email
    only), B3 vacant, C1 (a tenant who moved out); an agent of A; estate B with its own agent."""
    with committed() as s:
        estate = factories.make_estate(s)
        units = {n: factories.make_unit(s, estate, number=n) for n in ("A1", "A2", "B1", "B2", "B3", "C1")}
        people = {
            "both": Person(full_name="Lerato", email="lerato@example.test", phone="27820000001", estate_id=estate.id),
            "sms": Person(full_name="Sipho", phone="27820000002", estate_id=estate.id),
            "mail": Person(full_name="Anna", email="anna@example.test", estate_id=estate.id),
            "gone": Person(full_name="Gone", email="gone@example.test", estate_id=estate.id),
        }
        s.add_all(people.values())
        s.flush()
        for number, who in (("A1", "both"), ("A2", "both"), ("B1", "sms"), ("B2", "mail")):
            s.add(Tenancy(unit_id=units[number].id, person_id=people[who].id, move_in=date(2024, 1, 1)))
        s.add(Tenancy(unit_id=units["C1"].id, person_id=people["gone"].id, move_in=date(2023, 1, 1),
                      move_out=date(2024, 1, 1)))
        agent = factories.make_user(s, "agent", estate=estate)
        other = factories.make_estate(s)
        other_agent = factories.make_user(s, "agent", estate=other)
        return {"estate": estate.id, "agent": agent.email, "other_agent": other_agent.email, "other": other.id}


def form(token, **values):
    return {"csrf_token": token, "kind": "outage", "block": "", "subject": "Water off on Tuesday",
            "message": "The water is off from 9:00 to 12:00 for a pipe repair.", "channels": ["sms", "email"],
            "starts_at": "", "ends_at": "", **values}


def test_an_agent_previews_the_reach_then_sends_a_notice_by_sms_and_email(app, notice_kit, login, committed):
    agent = login(notice_kit["agent"])
    url = f"/agent/estates/{notice_kit['estate']}/notices"
    page = agent.get(url).get_data(as_text=True)
    assert "Outage and maintenance notices" in page and "No notice sent yet." in page
    token = csrf_from(page)
    preview = agent.post(url, data=form(token, block="b", action="preview")).get_data(as_text=True)
    # Block B: Sipho by SMS, Anna by email; B3 is vacant; the moved-out tenant of C1 is not reached.
    assert "<dt>People</dt><dd><strong>2</strong>" in preview and "<dt>By SMS</dt><dd>1</dd>" in preview
    reach = agent.post(f"{url}/reach", data=form(token, channels=["email"]),
                       headers={"HX-Request": "true"}).get_data(as_text=True)
    assert reach.lstrip().startswith('<section class="card" id="notice-reach"')
    assert "<dt>People</dt><dd><strong>2</strong>" in reach  # Lerato (once for two units) and Anna
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(Notice)) == 0  # a preview sends nothing
    sent = agent.post(url, data=form(token, action="send", starts_at="2026-12-08T09:00", ends_at="2026-12-08T12:00"))
    assert sent.status_code == 302
    detail = agent.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Water off on Tuesday" in detail and "<strong>3</strong>" in detail
    with committed() as s:
        notice = s.scalar(select(Notice))
        assert (notice.people, notice.by_sms, notice.by_email, notice.status) == (3, 2, 2, "sent")
        rows = s.execute(select(Notification.channel, Notification.to_address).where(
            Notification.template == "estate_notice")).all()
        assert sorted(rows) == [("email", "anna@example.test"), ("email", "lerato@example.test"),
                                ("sms", "27820000001"), ("sms", "27820000002")]
        sms = s.scalar(select(Notification.body).where(Notification.channel == "sms").limit(1))
        assert sms.startswith("Outage: Water off on Tuesday") and "08 Dec 2026 09:00" in sms
        assert s.scalar(select(AuditLog).where(AuditLog.action == "notice.sent")).new["people"] == 3
    listing = agent.get(url).get_data(as_text=True)
    assert "Sent notices" in listing and "Water off on Tuesday" in listing and "2 / 2" in listing


def test_a_large_estate_sends_through_the_job_and_a_retry_messages_nobody_twice(app, notice_kit, login, committed,
                                                                               monkeypatch):
    monkeypatch.setattr(notices, "INLINE_PEOPLE", 1)
    monkeypatch.setattr(notices, "CHUNK", 2)
    agent = login(notice_kit["agent"])
    url = f"/agent/estates/{notice_kit['estate']}/notices"
    sent = agent.post(url, data=form(csrf_from(agent.get(url).get_data(as_text=True)), action="send", kind="maintenance"))
    assert sent.status_code == 302
    detail = agent.get(sent.headers["Location"]).get_data(as_text=True)
    assert "Tenant notice" in detail  # the job's panel
    assert 'hx-trigger="job-finished-send-notice from:body" hx-select="#notice-facts"' in detail  # refreshed when done
    with committed() as s:
        notice = s.scalar(select(Notice))
        assert notice.status == "sent" and notice.done == 3
        before = s.scalar(select(func.count()).select_from(Notification))
        notices.deliver_notice(s, notice.id)  # a retried job resumes after the last one handled
        assert s.scalar(select(func.count()).select_from(Notification)) == before


def test_notices_refuse_bad_input_next_to_the_field_and_reaching_nobody(app, notice_kit, login, committed):
    agent = login(notice_kit["agent"])
    url = f"/agent/estates/{notice_kit['estate']}/notices"
    token = csrf_from(agent.get(url).get_data(as_text=True))
    refused = agent.post(url, data=form(token, action="send", subject="", channels=[], kind="party",
                                        starts_at="2026-12-08T12:00", ends_at="2026-12-08T09:00"))
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    for message in ("Write a short subject", "Send it by SMS, by email, or both.", "Choose outage or maintenance.",
                    "The end must be after the start."):
        assert message in page
    nobody = agent.post(url, data=form(token, action="send", block="B3"))
    assert nobody.status_code == 400 and "No tenant of block B3 can be reached" in nobody.get_data(as_text=True)
    assert agent.post(url, data={**form(token, action="send"), "csrf_token": "forged"}).status_code == 400
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(Notice)) == 0


def test_an_agent_of_another_estate_gets_404(app, notice_kit, login, committed):
    agent = login(notice_kit["agent"])
    url = f"/agent/estates/{notice_kit['estate']}/notices"
    assert agent.post(url, data=form(csrf_from(agent.get(url).get_data(as_text=True)), action="send")).status_code == 302
    with committed() as s:
        notice_id = s.scalar(select(Notice.id))
    stranger = login(notice_kit["other_agent"])
    token = csrf_from(stranger.get(f"/agent/estates/{notice_kit['other']}/notices").get_data(as_text=True))
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, data=form(token, action="send")).status_code == 404
    assert stranger.post(f"{url}/reach", data=form(token)).status_code == 404
    assert stranger.get(f"{url}/{notice_id}").status_code == 404
    assert stranger.get(f"/agent/estates/{notice_kit['other']}/notices/{notice_id}").status_code == 404


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.fixed_dictionaries({
    "kind": st.sampled_from(["outage", "maintenance", "", "x"]) | text, "block": text, "subject": text,
    "message": text | st.text(max_size=1100), "starts_at": text | st.just("2026-12-08T09:00"),
    "ends_at": text | st.just("2026-12-08T10:00"), "action": st.sampled_from(["preview", "send", ""]),
    "channels": st.lists(st.sampled_from(["sms", "email", "fax"]) | text, max_size=3)}))
def test_the_notice_form_never_answers_5xx(app, notice_kit, login, values):
    # The fixtures are made once for all examples: sign in once (signing in per example is rate-limited).
    if notice_kit.get("client") is None:
        notice_kit["client"] = login(notice_kit["agent"])
    agent = notice_kit["client"]
    url = f"/agent/estates/{notice_kit['estate']}/notices"
    token = csrf_from(agent.get(url).get_data(as_text=True))
    answer = agent.post(url, data={**values, "csrf_token": token})
    assert answer.status_code in (200, 302, 400)
    assert agent.post(f"{url}/reach", data={**values, "csrf_token": token}).status_code == 200
