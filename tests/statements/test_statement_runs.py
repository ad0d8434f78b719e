"""Statement PDFs carry the figures; the monthly run archives, emails with the PDF and retries."""
import socket
from datetime import date, datetime
from decimal import Decimal
from email import message_from_bytes
from email.policy import default as default_policy
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader
from sqlalchemy import select

from app.jobs import enqueue
from app.ledger import Entry, post
from app.models import JobRun, Person, Statement, StatementDelivery, Tenancy, UnitOwnership
from app.statements.figures import statement_for
from app.statements.pdf import render_statement
from app.statements.runs import JOB_KIND, estate_statement_rows, schedule_monthly_statements, start_run
from tests.factories import make_estate_with_wallet, make_unit, make_wallet

PERIOD = "2026-01"
TZ = ZoneInfo("Africa/Johannesburg")


def pdf_text(data: bytes) -> str:
    """The text a reader of the PDF sees, with its spaces normalised."""
    reader = PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def month_of_activity(session, *, owner_email="owner@example.test", tenant_email="tenant@example.test"):
    """An estate whose unit had a top-up and two days of consumption in January 2026."""
    kit = make_estate_with_wallet(session, name="Protea Court")
    pocket = kit.pocket("electricity")
    post(session, Entry(kit.estate.id, "topup", "jan-topup", [(pocket.id, Decimal("1234.50")),
         (kit.accounts.clearing.id, Decimal("-1234.50"))],
         occurred_at=datetime(2026, 1, 5, 10, tzinfo=TZ), memo="PayFast top-up R 1 234.50"))
    for day, amount in ((6, "57.00"), (7, "28.50")):
        post(session, Entry(kit.estate.id, "consumption", f"jan-use-{day}", [
            (pocket.id, -Decimal(amount)), (kit.accounts.revenue["electricity"].id, Decimal(amount))],
            occurred_at=datetime(2026, 1, day, 23, tzinfo=TZ),
            memo=f"Electricity on {day:02d} Jan 2026 at R 2.85/kWh"))
    owner = Person(full_name="Olga Owner", email=owner_email)
    tenant = Person(full_name="Tumi Tenant", email=tenant_email)
    session.add_all([owner, tenant])
    session.flush()
    session.add(UnitOwnership(unit_id=kit.unit.id, person_id=owner.id, since=date(2020, 1, 1)))
    session.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.id, move_in=date(2025, 6, 1)))
    session.commit()
    return kit


class Inbox:
    """An in-process SMTP server that keeps what it receives, or refuses with 451."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 Mailbox temporarily unavailable"
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(app):
    """Start an SMTP server and point MAIL_URL at it; yields the Inbox."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    saved = app.config["MAIL_URL"]
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}"
    yield inbox
    app.config["MAIL_URL"] = saved
    controller.stop()


def test_statement_pdf_shows_the_key_figures(session):
    kit = month_of_activity(session)
    data = statement_for(session, kit.unit, PERIOD)
    text = pdf_text(render_statement(data))
    assert "Protea Court" in text and f"Unit {kit.unit.number}" in text and "January 2026" in text
    assert "R 1 234.50" in text      # the top-up
    assert "R -85.50" in text        # consumption of the month
    assert "R 1 149.00" in text      # closing balance
    assert "R 2.85/kWh" in text      # the tariff as the postings state it
    assert "Tumi Tenant" in text and "Olga Owner" in text
    assert "Africa/Johannesburg" in text
    assert "PROVISIONAL" not in text
    assert "PROVISIONAL" in pdf_text(render_statement(data, provisional=True))


def test_units_mode_statement_pdf_shows_kwh_and_money_paid(session):
    kit = make_estate_with_wallet(session, currency="LSL", denomination="units", name="Maluti Flats")
    pocket = kit.pocket("electricity")
    post(session, Entry(kit.estate.id, "topup", "u-topup", [
        (kit.accounts.clearing.id, Decimal("-210.00")), (kit.accounts.revenue["electricity"].id, Decimal("210.00")),
        (kit.accounts.units_issued["electricity"].id, Decimal("-100.000")), (pocket.id, Decimal("100.000"))],
        occurred_at=datetime(2026, 1, 9, 9, tzinfo=ZoneInfo("Africa/Maseru"))))
    session.commit()
    text = pdf_text(render_statement(statement_for(session, kit.unit, PERIOD)))
    assert "100.000 kWh" in text and "M 210.00" in text and "Paid for top-ups" in text


def test_monthly_run_archives_emails_with_pdf_and_reruns_return_the_archive(session, smtp):
    kit = month_of_activity(session)
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    run = session.get(JobRun, run.id)
    assert run.status == "done", (run.errors, run.result)
    statement = session.scalar(select(Statement).where(Statement.unit_id == kit.unit.id))
    assert statement.period == PERIOD and statement.discrepancy is None
    assert "R 1 149.00" in pdf_text(statement.pdf)
    assert {m["To"] for m in smtp.messages} == {"owner@example.test", "tenant@example.test"}
    attachment = next(smtp.messages[0].iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == statement.pdf
    assert {d.status for d in statement.deliveries} == {"sent"}

    # A re-run sends nothing twice and returns the archived PDF byte for byte.
    first_pdf, first_hash = statement.pdf, statement.pdf_sha256
    start_run(kit.estate, PERIOD)
    session.expire_all()
    again = session.scalars(select(Statement).where(Statement.unit_id == kit.unit.id)).all()
    assert len(again) == 1 and again[0].pdf == first_pdf and again[0].pdf_sha256 == first_hash
    assert len(smtp.messages) == 2


def test_a_late_posting_into_an_issued_month_is_flagged_not_reissued(session, smtp):
    kit = month_of_activity(session)
    start_run(kit.estate, PERIOD)
    post(session, Entry(kit.estate.id, "adjustment", "late-fix", [
        (kit.pocket().id, Decimal("10.00")), (kit.accounts.suspense.id, Decimal("-10.00"))],
        occurred_at=datetime(2026, 1, 20, tzinfo=TZ)))
    session.commit()
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    run = session.get(JobRun, run.id)
    statement = session.scalar(select(Statement).where(Statement.unit_id == kit.unit.id))
    assert "R 1 149.00" in pdf_text(statement.pdf)  # the issued PDF is untouched
    assert "adjustments 0.00 -> 10.00" in statement.discrepancy
    assert any("figures changed" in error for error in run.errors)


def test_failing_smtp_is_retried_and_visible_and_nothing_is_lost(session, smtp):
    kit = month_of_activity(session)
    smtp.refuse = True
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    run = session.get(JobRun, run.id)
    assert run.status == "failed"  # visible on the staff page; RQ retries it with backoff
    assert any("not sent" in error and "451" in error for error in run.errors)
    deliveries = session.scalars(select(StatementDelivery)).all()
    assert {d.status for d in deliveries} == {"pending"} and {d.attempts for d in deliveries} == {1}
    assert session.scalar(select(Statement.id)) is not None  # archived although unsent

    smtp.refuse = False  # the retry (here: the next run) delivers the same archived PDF
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    assert session.get(JobRun, run.id).status == "done"
    assert {d.status for d in session.scalars(select(StatementDelivery))} == {"sent"}
    assert len(smtp.messages) == 2


def test_statements_flag_off_issues_nothing(session, smtp):
    kit = month_of_activity(session)
    kit.estate.features = {"statements": False}
    session.commit()
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    assert "turned off" in session.get(JobRun, run.id).result
    assert session.scalar(select(Statement.id)) is None and not smtp.messages
    assert schedule_monthly_statements(session) == []


def test_a_month_that_has_not_ended_is_refused(session, smtp):
    kit = make_estate_with_wallet(session)
    session.commit()
    from app.periods import current_period
    run = enqueue(JOB_KIND, kit.estate.id, current_period(kit.estate.tz), target="now")
    session.expire_all()
    run = session.get(JobRun, run.id)
    assert run.status == "failed" and any("has not ended" in e for e in run.errors)


def test_schedule_starts_the_last_complete_month_once(session, smtp):
    kit = month_of_activity(session)
    other = make_unit(session, kit.estate)
    make_wallet(session, other)
    session.commit()
    started = schedule_monthly_statements(session)
    assert len(started) == 1 and started[0].startswith(kit.estate.code)
    assert schedule_monthly_statements(session) == []  # everything issued and sent


def test_without_mail_url_the_run_says_emails_were_written_to_the_log_not_sent(session, app, caplog, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", "")
    kit = month_of_activity(session)
    with caplog.at_level("INFO", logger="app.notify"):
        run = start_run(kit.estate, PERIOD)
    session.expire_all()
    run = session.get(JobRun, run.id)
    assert run.status == "done", (run.errors, run.result)
    assert "emails: 0 sent, 2 written to the log (MAIL_URL unset), 0 failed" in run.result
    statement = session.scalar(select(Statement).where(Statement.unit_id == kit.unit.id))
    assert {(d.status, d.sent_at) for d in statement.deliveries} == {("logged", None)}
    logged = "\n".join(r.getMessage() for r in caplog.records if "MAIL_URL unset" in r.getMessage())
    name = f"statement-{kit.estate.code}-{kit.unit.number}-{PERIOD}.pdf"
    assert f"[attachment {name} · application/pdf · {len(statement.pdf):,} bytes]" in logged
    assert "Content-Transfer-Encoding: base64" not in logged and len(logged.splitlines()) < 40
    rows = {row.unit_number: row for row in estate_statement_rows(session, kit.estate, PERIOD)}
    assert (rows[kit.unit.number].sent, rows[kit.unit.number].logged) == (0, 2)

    start_run(kit.estate, PERIOD)  # a re-run does not write them to the log again
    session.expire_all()
    assert {d.attempts for d in session.scalars(select(StatementDelivery))} == {1}


def month_with_a_levy(session, **emails):
    """month_of_activity plus the owner's levy of R 90.00 charged in the month (B3)."""
    from app.billing.levies import run_levies, save_definition

    kit = month_of_activity(session, **emails)
    save_definition(session, kit.estate, {"name": "Admin levy", "amount": "90.00", "frequency": "monthly",
                                          "allocation": "equal", "effective_from": PERIOD, "units": "all"})
    assert run_levies(session, kit.estate, PERIOD).charged == 1
    return kit


def test_the_tenant_is_emailed_the_statement_without_the_owners_levies(session, smtp):
    kit = month_with_a_levy(session)
    start_run(kit.estate, PERIOD)
    session.expire_all()
    statement = session.scalar(select(Statement).where(Statement.unit_id == kit.unit.id))
    sent = {m["To"]: pdf_text(next(m.iter_attachments()).get_content()) for m in smtp.messages}
    assert set(sent) == {"owner@example.test", "tenant@example.test"}
    assert "Levies (owner)" in sent["owner@example.test"] and "Admin levy 2026-01" in sent["owner@example.test"]
    assert "Levies (owner)" not in sent["tenant@example.test"] and "Admin levy" not in sent["tenant@example.test"]
    for text in sent.values():  # the rest of the statement is the same for both
        assert "R 1 149.00" in text and "Tumi Tenant" in text
    assert statement.tenant_pdf is not None and "Levies (owner)" in pdf_text(statement.pdf)


def test_an_owner_occupier_is_emailed_the_statement_with_the_levies(session, smtp):
    kit = month_with_a_levy(session, tenant_email="owner@example.test")  # one person, both roles
    start_run(kit.estate, PERIOD)
    assert [m["To"] for m in smtp.messages] == ["owner@example.test"]
    assert "Levies (owner)" in pdf_text(next(smtp.messages[0].iter_attachments()).get_content())


def test_a_statement_without_levies_is_one_copy_for_everyone(session, smtp):
    kit = month_of_activity(session)
    start_run(kit.estate, PERIOD)
    session.expire_all()
    statement = session.scalar(select(Statement).where(Statement.unit_id == kit.unit.id))
    assert statement.tenant_pdf is None
    assert {next(m.iter_attachments()).get_content() for m in smtp.messages} == {statement.pdf}
