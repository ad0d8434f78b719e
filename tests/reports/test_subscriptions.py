"""Report subscriptions (issue 22 item 8): subscribe from a report, due weekly/monthly, sent once a period,
disabled when the report is out of the user's sight, failures recorded without blocking others."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import delete, func, select

from app.models import AuditLog, RoleGrant, User
from app.models.subscriptions import ReportDelivery, ReportSubscription
from app.reports import subscriptions as subs
from app.reports.subscriptions import REPORTS, SubscriptionError, is_due, period_of, report_args, send_due
from tests.helpers import csrf_from

MONDAY = datetime(2026, 11, 30, 6, 15, tzinfo=UTC)  # ISO week 2026-W49


def test_periods_are_iso_weeks_and_calendar_months():
    assert period_of("weekly", MONDAY) == "2026-W49"
    assert period_of("weekly", MONDAY - timedelta(minutes=16)) == "2026-W49"  # still Monday, 06:00
    assert period_of("weekly", MONDAY - timedelta(hours=7)) == "2026-W48"     # Sunday night
    assert period_of("weekly", datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"  # ISO year, not calendar
    assert period_of("monthly", MONDAY) == "2026-11"
    assert period_of("monthly", datetime(2026, 12, 1, tzinfo=UTC)) == "2026-12"


def _subscription(s, email, endpoint, args, *, frequency="weekly", fmt="csv", created=MONDAY - timedelta(days=3)):
    user = s.scalar(select(User).where(User.email == email))
    row = ReportSubscription(user_id=user.id, endpoint=endpoint, args=args, title="Test report",
                             frequency=frequency, file_format=fmt, created_at=created)
    s.add(row)
    s.flush()
    return row.id


def test_due_from_the_period_after_it_was_made_and_once_a_period(app, committed, world):
    with committed() as s:
        weekly = _subscription(s, world.emails["staff"], "staff.metering", {})
        monthly = _subscription(s, world.emails["staff"], "staff.metering", {}, frequency="monthly",
                                created=datetime(2026, 11, 3, tzinfo=UTC))
        fresh = _subscription(s, world.emails["staff"], "staff.metering", {}, created=MONDAY)
    with committed() as s:
        rows = {i: s.get(ReportSubscription, i) for i in (weekly, monthly, fresh)}
        assert is_due(s, rows[weekly], MONDAY)  # made the week before
        assert not is_due(s, rows[monthly], MONDAY)  # made this month: first on 1 December
        assert is_due(s, rows[monthly], datetime(2026, 12, 1, 6, tzinfo=UTC))
        assert not is_due(s, rows[fresh], MONDAY + timedelta(days=6))  # same week it was made
        assert is_due(s, rows[fresh], MONDAY + timedelta(days=7))
        s.add(ReportDelivery(subscription_id=weekly, period="2026-W49", status="sent"))
        s.flush()
        assert not is_due(s, rows[weekly], MONDAY + timedelta(days=2))  # sent this week already
        s.add(ReportDelivery(subscription_id=fresh, period="2026-W50", status="failed"))
        s.flush()
        assert is_due(s, rows[fresh], MONDAY + timedelta(days=7))  # a failed send is tried again
        rows[weekly].cancelled_at = MONDAY
        assert not is_due(s, rows[weekly], MONDAY + timedelta(days=7))


def test_the_next_email_is_today_when_due_else_the_next_monday_or_first(app, committed, world):
    from datetime import date

    from app.reports.subscriptions import next_send

    with committed() as s:
        weekly = s.get(ReportSubscription, _subscription(s, world.emails["staff"], "staff.metering", {}))
        monthly = s.get(ReportSubscription, _subscription(s, world.emails["staff"], "staff.metering", {},
                                                          frequency="monthly", created=MONDAY))
        assert next_send(s, weekly, MONDAY) == MONDAY.date()
        assert next_send(s, monthly, MONDAY) == date(2026, 12, 1)
        assert next_send(s, monthly, datetime(2026, 12, 31, tzinfo=UTC)) == datetime(2026, 12, 31).date()  # due, unsent
        s.add(ReportDelivery(subscription_id=weekly.id, period="2026-W49", status="sent"))
        s.flush()
        assert next_send(s, weekly, MONDAY + timedelta(days=2)) == date(2026, 12, 7)
        weekly.cancelled_at = MONDAY
        assert next_send(s, weekly, MONDAY) is None


def test_a_due_report_is_emailed_once_per_period_as_an_attachment(app, committed, world, smtp):
    with committed() as s:
        sub_id = _subscription(s, world.emails["tenant"], "tenant.transactions_export",
                               {"unit_id": str(world.unit_a)}, fmt="pdf")
    with app.app_context():
        from app.extensions import db

        first = send_due(db.session, app, now=MONDAY)
        again = send_due(db.session, app, now=MONDAY + timedelta(days=1))
        assert (first.sent, again.sent, again.not_due) == (1, 0, 1)
        assert len(smtp.messages) == 1
        message = smtp.messages[0]
        assert message["To"] == world.emails["tenant"] and "2026-W49" in message["Subject"]
        attachment = next(message.iter_attachments())
        assert attachment.get_filename() == f"transactions-unit-{world.unit_a_number.lower()}-2026-W49.pdf"
        assert attachment.get_payload(decode=True).startswith(b"%PDF")
        nxt = send_due(db.session, app, now=MONDAY + timedelta(days=7))
        assert nxt.sent == 1 and len(smtp.messages) == 2
        deliveries = db.session.execute(select(ReportDelivery.period, ReportDelivery.status)
                                        .where(ReportDelivery.subscription_id == sub_id)
                                        .order_by(ReportDelivery.period)).all()
        assert [tuple(d) for d in deliveries] == [("2026-W49", "sent"), ("2026-W50", "sent")]
        assert db.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "report_subscription.sent", AuditLog.entity_id == str(sub_id))) == 2


def test_a_report_the_user_can_no_longer_see_is_skipped_and_disabled_with_a_reason(app, committed, world, smtp, login):
    with committed() as s:
        sub_id = _subscription(s, world.emails["tenant"], "tenant.transactions_export", {"unit_id": str(world.unit_a)})
        user_id = s.scalar(select(User.id).where(User.email == world.emails["tenant"]))
    client = login(world.emails["tenant"])  # signed in before the grant goes
    with committed() as s:
        s.execute(delete(RoleGrant).where(RoleGrant.user_id == user_id))
    with app.app_context():
        from app.extensions import db

        report = send_due(db.session, app, now=MONDAY)
        assert (report.sent, report.disabled) == (0, 1) and not smtp.messages
        row = db.session.get(ReportSubscription, sub_id)
        assert row.disabled_at is not None and "HTTP 40" in row.disabled_reason
        assert send_due(db.session, app, now=MONDAY + timedelta(days=7)).disabled == 0  # stays off
        assert db.session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "report_subscription.disable")) == 1
    page = client.get("/subscriptions").get_data(as_text=True)
    assert "Stopped" in page and "no longer open this report" in page


def test_one_failing_report_does_not_block_the_others(app, committed, world, smtp, monkeypatch):
    with committed() as s:
        broken = _subscription(s, world.emails["staff"], "staff.metering", {})
        fine = _subscription(s, world.emails["staff"], "staff.ledger", {})
    real = subs.render_as

    def render_as(app_, user, endpoint, args, fmt):
        if endpoint == "staff.metering":
            raise RuntimeError("the report broke")
        return real(app_, user, endpoint, args, fmt)
    monkeypatch.setattr(subs, "render_as", render_as)
    with app.app_context():
        from app.extensions import db

        report = send_due(db.session, app, now=MONDAY)
        assert (report.sent, report.failed) == (1, 1) and len(smtp.messages) == 1
        failed = db.session.scalar(select(ReportDelivery).where(ReportDelivery.subscription_id == broken))
        assert failed.status == "failed" and "the report broke" in failed.error
        smtp.refuse = True
        monkeypatch.setattr(subs, "render_as", real)
        retry = send_due(db.session, app, now=MONDAY + timedelta(hours=1))
        assert (retry.sent, retry.failed) == (0, 1)  # the fine one was sent this week; SMTP refuses the other
        smtp.refuse = False
        assert send_due(db.session, app, now=MONDAY + timedelta(hours=2)).sent == 1
        assert db.session.get(ReportSubscription, fine).last_sent_at is not None


def test_subscribe_from_a_report_needs_csrf_and_scope(app, committed, world, login):
    client = login(world.emails["tenant"])
    form_page = client.get(f"/subscriptions/new?report=tenant.transactions_export&arg.unit_id={world.unit_a}")
    assert form_page.status_code == 200
    token = csrf_from(form_page.get_data(as_text=True))
    data = {"report": "tenant.transactions_export", "arg.unit_id": str(world.unit_a), "frequency": "monthly",
            "file_format": "csv"}
    assert client.post("/subscriptions", data=data).status_code == 400  # no CSRF token
    assert client.post("/subscriptions", data={**data, "csrf_token": token}).status_code == 302
    again = client.post("/subscriptions", data={**data, "csrf_token": token})
    assert again.status_code == 400 and "already receive this report" in again.get_data(as_text=True)
    other_unit = client.post("/subscriptions", data={**data, "arg.unit_id": str(world.unit_b), "csrf_token": token})
    assert other_unit.status_code == 404
    bad = client.post("/subscriptions", data={**data, "frequency": "daily", "csrf_token": token})
    assert bad.status_code == 400 and "Choose weekly or monthly" in bad.get_data(as_text=True)
    assert client.get("/subscriptions/new?report=auth.logout").status_code == 404
    bare = client.get("/subscriptions/new")
    assert bare.status_code == 200 and "under its Download links" in bare.get_data(as_text=True)
    assert client.post("/subscriptions", data={**data, "report": "auth.logout", "csrf_token": token}).status_code == 404
    listing = client.get("/subscriptions").get_data(as_text=True)
    assert f"Transactions unit {world.unit_a_number.lower()}" in listing and "Monthly" in listing
    with committed() as s:
        sub_id = s.scalar(select(ReportSubscription.id))
    staff = login(world.emails["staff"])
    staff_token = csrf_from(staff.get("/subscriptions").get_data(as_text=True))
    assert staff.post(f"/subscriptions/{sub_id}/cancel", data={"csrf_token": staff_token}).status_code == 404
    assert client.post(f"/subscriptions/{sub_id}/cancel", data={}).status_code == 400  # no CSRF token
    assert client.post(f"/subscriptions/{sub_id}/cancel", data={"csrf_token": token}).status_code == 302
    assert "Cancelled" in client.get("/subscriptions").get_data(as_text=True)


def test_export_links_offer_subscribe_to_a_signed_in_user(app, world, login):
    client = login(world.emails["staff"])
    page = client.get("/staff/metering").get_data(as_text=True)
    link = re.search(r'href="([^"]*/subscriptions/new[^"]*)"', page)
    assert link and "report=staff.metering" in link.group(1)
    # A page opened with arguments: the link carries them (and the page still renders).
    filtered = client.get("/staff/metering/dead-letters?pending=1")
    assert filtered.status_code == 200
    link = re.search(r'href="([^"]*/subscriptions/new[^"]*)"', filtered.get_data(as_text=True))
    assert link and "arg.pending=1" in link.group(1)


def test_every_export_link_in_the_templates_can_be_subscribed_to():
    root = Path(__file__).resolve().parents[2] / "templates"
    literal = re.compile(r"""export_links\(\s*["']([a-z_]+\.[a-z_]+)["']""")
    found = {m for path in root.rglob("*.html") for m in literal.findall(path.read_text())}
    assert found and found <= set(REPORTS), found - set(REPORTS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=50), st.text(max_size=300), max_size=20))
def test_any_form_is_parsed_to_args_or_refused(app_ctx, form):
    try:
        args = report_args(form)
    except SubscriptionError as error:
        assert "report" in error.errors
    else:
        assert len(args) <= 12 and all(len(v) <= 200 for v in args.values())


@pytest.fixture
def tenant_form(app, world, login):
    client = login(world.emails["tenant"])
    return client, csrf_from(client.get("/subscriptions").get_data(as_text=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=st.sampled_from(sorted(REPORTS) + ["", "auth.logout", "x" * 200]),
       args=st.dictionaries(st.text(max_size=15).map(lambda k: "arg." + k), st.text(max_size=30), max_size=4),
       frequency=st.sampled_from(["weekly", "monthly", "", "daily"]), fmt=st.sampled_from(["csv", "pdf", "xls"]))
def test_the_subscribe_form_answers_any_input_with_a_page_never_a_500(tenant_form, report, args, frequency, fmt):
    client, token = tenant_form
    response = client.post("/subscriptions", data={"report": report, **args, "frequency": frequency,
                                                   "file_format": fmt, "csrf_token": token})
    assert response.status_code in (302, 400, 404)


def test_weeks_are_the_subscribers_estates_and_the_email_is_in_their_language(app, committed, world, smtp):
    """Sunday 23:30 UTC is already Monday in Maseru: the Maseru tenant's new week has begun."""
    from app.models import Estate, Person

    sunday_night = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    with committed() as s:
        s.get(Estate, world.estate1).timezone = "Africa/Maseru"
        tenant = s.scalar(select(User).where(User.email == world.emails["tenant"]))
        s.get(Person, tenant.person_id).language = "fr"
        tenant_id = tenant.id
        sub_id = _subscription(s, world.emails["tenant"], "tenant.transactions_export",
                               {"unit_id": str(world.unit_a)})
        s.add(ReportDelivery(subscription_id=sub_id, period="2026-W49", status="sent"))
        staff_id = _subscription(s, world.emails["staff"], "staff.metering", {})
        s.add(ReportDelivery(subscription_id=staff_id, period="2026-W49", status="sent"))
    with app.app_context():
        from app.extensions import db

        assert subs.subscriber_timezone(db.session, db.session.get(User, tenant_id)).key == "Africa/Maseru"
        report = send_due(db.session, app, now=sunday_night)
        assert (report.sent, report.not_due) == (1, 1)  # staff: no home estate, UTC, still week 49
        [message] = smtp.messages
        assert message["To"] == world.emails["tenant"] and "2026-W50" in message["Subject"]
        body = message.get_body().get_content()
        assert "07 déc. 2026 01:30" in body, body  # Maseru's time, written the French way
