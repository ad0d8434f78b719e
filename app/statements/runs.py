"""Issuing monthly statements (O5): the archive, the monthly job and email delivery.

An issued statement is archived once per unit and month with its figures, their SHA-256
and the PDF's SHA-256, and is never rendered again: a re-run returns the archived PDF.
If a re-run computes different figures (someone posted into a month already issued), the
archive is kept as issued and the statement is flagged with the difference for staff.
Each owner and tenant with an email address gets one delivery row; sending is retried on
later runs (RQ re-runs the job with backoff) until it succeeds or MAX_ATTEMPTS is reached.
"""
from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.billing.shared_solar import allocate_before_billing
from app.jobs import enqueue, job
from app.models import Estate, Person, Statement, StatementDelivery, Tenancy, Unit, UnitOwnership, utcnow
from app.notify import in_language
from app.notify.email import send_email
from app.periods import current_period, last_complete_period, previous_period
from app.statements.figures import StatementData, StatementPeriodError, load_statements, month_bounds
from app.statements.pdf import render_statement

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 4
JOB_KIND = "generate_monthly_statements"


class StatementDeliveryFailed(RuntimeError):
    """Some statement emails could not be sent; the job is retried and the rows stay visible."""


@dataclass
class IssueOutcome:
    statement: Statement
    outcome: str  # issued | archived | changed


def job_target(estate: Estate, period: str) -> str:
    """The JobRun target of an estate's month (one run at a time per target)."""
    return f"{estate.code}:{period}"


def issue_statement(session: Session, data: StatementData, job_run_id: int | None = None) -> IssueOutcome:
    """Archive a unit's statement, or return the archived one; changed figures are flagged, never rewritten."""
    existing = session.scalar(select(Statement).where(
        Statement.unit_id == data.unit_id, Statement.period == data.period))
    digest = data.figures_sha256()
    if existing is not None:
        if existing.figures_sha256 == digest:
            return IssueOutcome(existing, "archived")
        note = describe_change(existing.figures, data.figures())
        if existing.discrepancy != note:
            audit.record(session, "statement.figures_changed", existing,
                         old={"figures_sha256": existing.figures_sha256},
                         new={"figures_sha256": digest, "change": note})
            existing.discrepancy = note
        return IssueOutcome(existing, "changed")
    from app.i18n import DEFAULT_LANGUAGE, estate_language  # the archived PDF: the estate's language (X8)
    language = estate_language(session, data.estate_id) or DEFAULT_LANGUAGE
    issued_at = utcnow()
    pdf = render_statement(data, language=language, issued_at=issued_at)
    # Levies are the owner's (B3): the tenant gets the same statement without them.
    tenant_pdf = (render_statement(data, language=language, issued_at=issued_at, levies=False)
                  if data.levy is not None else None)
    statement = Statement(
        estate_id=data.estate_id, unit_id=data.unit_id, period=data.period, figures=data.figures(),
        figures_sha256=digest, pdf=pdf, pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        tenant_pdf=tenant_pdf, job_run_id=job_run_id,
    )
    session.add(statement)
    session.flush()
    audit.record(session, "statement.issued", statement,
                 new={"unit": data.unit_number, "period": data.period, "pdf_sha256": statement.pdf_sha256})
    return IssueOutcome(statement, "issued")


def describe_change(old: dict, new: dict) -> str:
    """Which figures differ between the archived statement and a fresh computation."""
    before = {p["utility"]: p for p in old.get("pockets", [])}
    changes = []
    for pocket in new.get("pockets", []):
        was = before.get(pocket["utility"], {})
        for name, value in pocket.items():
            if name not in ("utility", "commodity") and was.get(name) != value:
                changes.append(f"{pocket['utility']} {name} {was.get(name)} -> {value}")
    return "; ".join(changes) or "figures differ"


def recipients(session: Session, unit_id: int, period: str, timezone: str) -> list[tuple[Person, str]]:
    """Owners and tenants of the unit during the month who have an email address."""
    start, end = month_bounds(period, timezone)
    first_day, last_day = start.date(), end.date()
    owners = session.scalars(select(Person).join(UnitOwnership, UnitOwnership.person_id == Person.id).where(
        UnitOwnership.unit_id == unit_id, UnitOwnership.since < last_day,
        or_(UnitOwnership.until.is_(None), UnitOwnership.until >= first_day)))
    tenants = session.scalars(select(Person).join(Tenancy, Tenancy.person_id == Person.id).where(
        Tenancy.unit_id == unit_id, Tenancy.move_in < last_day,
        or_(Tenancy.move_out.is_(None), Tenancy.move_out >= first_day)))
    found: dict[str, tuple[Person, str]] = {}
    for role, people in (("owner", owners), ("tenant", tenants)):
        for person in people:
            if person.email and person.email.lower() not in found:
                found[person.email.lower()] = (person, role)
    return list(found.values())


def ensure_deliveries(session: Session, statement: Statement, timezone: str) -> None:
    """One delivery row per recipient of the statement (added once, kept forever)."""
    have = {d.to_address.lower() for d in statement.deliveries}
    for person, role in recipients(session, statement.unit_id, statement.period, timezone):
        if person.email.lower() not in have:
            statement.deliveries.append(StatementDelivery(
                person_id=person.id, role=role, to_address=person.email))
    session.flush()


def deliver(session: Session, delivery: StatementDelivery, estate: Estate, unit_number: str) -> str:
    """Email one statement with its PDF; record and return the outcome: sent, logged or failed."""
    statement = delivery.statement
    person = session.get(Person, delivery.person_id) if delivery.person_id else None
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = delivery.to_address
    with in_language(session, person, estate.id):  # the recipient's language, else the estate's (X8)
        label = month_label(statement.period)
        message["Subject"] = _("%(estate)s: your statement for %(month)s (unit %(unit)s)",
                               estate=estate.name, month=label, unit=unit_number)
        message.set_content(
            _("Hello,") + "\n\n"
            + _("Attached is the %(estate)s statement for unit %(unit)s, %(month)s.", estate=estate.name,
                unit=unit_number, month=label) + "\n"
            + _("You can download it again at any time from your Meterwise page.") + "\n\nMeterwise\n")
    pdf = tenant_copy(session, statement) if delivery.role == "tenant" else statement.pdf
    message.add_attachment(pdf, maintype="application", subtype="pdf",
                           filename=statement_filename(estate.code, unit_number, statement.period))
    delivery.attempts += 1
    try:
        outcome = send_email(message)
    except (OSError, smtplib.SMTPException) as error:
        delivery.error = f"{type(error).__name__}: {error}"
        delivery.status = "failed" if delivery.attempts >= MAX_ATTEMPTS else "pending"
        return "failed"
    delivery.status, delivery.error = outcome, None
    delivery.sent_at = utcnow() if outcome == "sent" else None
    return outcome


def tenant_copy(session: Session, statement: Statement) -> bytes:
    """The archived statement as its tenant gets it: without the owner's levy section."""
    if statement.tenant_pdf is not None or "levy" not in statement.figures:
        return statement.tenant_pdf or statement.pdf  # no levy section: one copy for everyone
    # Issued before tenant copies were archived: rendered now from the month's figures.
    from app.statements.figures import statement_for

    from app.i18n import DEFAULT_LANGUAGE, estate_language

    data = statement_for(session, session.get(Unit, statement.unit_id), statement.period)
    return render_statement(data, issued_at=statement.created_at, levies=False,  # as archived: the estate's language
                            language=estate_language(session, statement.estate_id) or DEFAULT_LANGUAGE)


# Who sees the owner's levy section of a unit's statement besides staff (B3): its owners and
# those who act for them. An owner-occupier sees it in either layer; a tenant never does.
LEVY_VIEWER_ROLES = ("owner", "agent", "body_corporate")


def sees_levies(session: Session, user, unit: Unit) -> bool:
    """Whether the user gets the owner's copy of the unit's statements (with levies)."""
    from app.auth.scope import unit_ids_query

    return bool(user.is_staff) or session.scalar(select(Unit.id).where(
        Unit.id == unit.id, Unit.id.in_(unit_ids_query(user, LEVY_VIEWER_ROLES)))) is not None


def month_label(period: str) -> str:
    """'2026-10' -> 'October 2026', in the reader's language ('octobre 2026')."""
    from datetime import datetime

    from app.i18n.formatting import local_date

    return local_date(datetime.strptime(period, "%Y-%m").date(), "%B %Y")


def statement_filename(estate_code: str, unit_number: str, period: str) -> str:
    return f"statement-{estate_code}-{unit_number}-{period}.pdf"


@job(JOB_KIND)
def generate_monthly_statements(session: Session, progress, estate_id: int, period: str) -> str:
    """Issue, archive and email every unit's statement of an estate's month; safe to re-run."""
    estate = session.get(Estate, estate_id)
    if estate is None:
        raise ValueError(f"estate {estate_id} does not exist")
    if not estate.feature_enabled("statements"):
        return f"Statements are turned off for {estate.name}; nothing was issued."
    end = month_bounds(period, estate.timezone)[1]
    if end > utcnow():
        raise StatementPeriodError(_("%(month)s has not ended in %(estate)s; statements are issued after the month.", month=period, estate=estate.name))
    allocate_before_billing(session, estate, period)  # the month's solar credit on its statements
    statements = load_statements(session, estate, period)
    progress.set_total(len(statements))
    counts = {"issued": 0, "archived": 0, "changed": 0, "error": 0}
    for data in statements:
        try:
            outcome = issue_statement(session, data, progress.run_id)
            ensure_deliveries(session, outcome.statement, estate.timezone)
            session.commit()
            counts[outcome.outcome] += 1
            if outcome.outcome == "changed":
                progress.error(f"Unit {data.unit_number}: figures changed since the statement was "
                               f"issued ({outcome.statement.discrepancy}); the issued PDF was kept")
        except Exception as error:  # one unit's failure never stops the others
            session.rollback()
            counts["error"] += 1
            log.exception("statement for unit %s %s failed", data.unit_number, period)
            progress.error(f"Unit {data.unit_number}: {type(error).__name__}: {error}")
        progress.step()
    emails = _send_pending(session, progress, estate, period)
    summary = (f"{estate.name} {period}: {len(statements)} statements ({counts['issued']} issued, "
               f"{counts['archived']} already archived, {counts['changed']} flagged, "
               f"{counts['error']} failed); emails: {emails['sent']} sent, "
               f"{emails['logged']} written to the log (MAIL_URL unset), {emails['failed']} failed")
    if emails["failed"]:
        raise StatementDeliveryFailed(summary)
    return summary


def _send_pending(session: Session, progress, estate: Estate, period: str) -> dict[str, int]:
    """Send every delivery of the month that is still pending; commit each outcome; count them."""
    pending = session.execute(
        select(StatementDelivery, Unit.number)
        .join(Statement, Statement.id == StatementDelivery.statement_id)
        .join(Unit, Unit.id == Statement.unit_id)
        .where(Statement.estate_id == estate.id, Statement.period == period,
               StatementDelivery.status == "pending")
        .order_by(Unit.number, StatementDelivery.id)
    ).all()
    counts = {"sent": 0, "logged": 0, "failed": 0}
    for delivery, unit_number in pending:
        outcome = deliver(session, delivery, estate, unit_number)
        counts[outcome] += 1
        if outcome == "failed":
            progress.error(f"Unit {unit_number}: email to {delivery.to_address} not sent "
                           f"(attempt {delivery.attempts} of {MAX_ATTEMPTS}): {delivery.error}")
        session.commit()
    return counts


def start_run(estate: Estate, period: str, user_id: int | None = None):
    """Enqueue the month's statement run for an estate (joins a run already under way)."""
    return enqueue(JOB_KIND, estate.id, period, target=job_target(estate, period), user_id=user_id,
                   queue="low")


def schedule_monthly_statements(session: Session) -> list[str]:
    """For the 1st of the month: start the last month's run of every estate that wants statements."""
    started = []
    for estate in session.scalars(select(Estate).order_by(Estate.id)):
        if not estate.feature_enabled("statements"):
            continue
        period = last_complete_period(estate.tz)
        units = session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == estate.id))
        done = session.scalar(select(func.count(Statement.id)).where(
            Statement.estate_id == estate.id, Statement.period == period))
        waiting = session.scalar(select(func.count(StatementDelivery.id)).join(Statement).where(
            Statement.estate_id == estate.id, Statement.period == period,
            StatementDelivery.status == "pending"))
        if done >= units and not waiting:
            continue  # issued and delivered already: an hourly cron costs nothing
        start_run(estate, period)
        started.append(job_target(estate, period))
    return started


# --- what the pages show ------------------------------------------------------------------


@dataclass
class MonthRow:
    """A month on a unit's statements page: issued (archived) or provisional."""

    period: str
    label: str
    statement_id: int | None
    issued_at: object | None
    pdf_sha256: str | None

    @property
    def issued(self) -> bool:
        return self.statement_id is not None


def unit_statement_months(session: Session, unit: Unit, months: int = 12) -> list[MonthRow]:
    """The unit's last `months` months, newest first, with the archived statement where issued."""
    from app.models import Account, LedgerTransaction, Posting, Wallet

    first = session.scalar(
        select(func.min(LedgerTransaction.period))
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Posting.account_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .where(Wallet.unit_id == unit.id))
    period = current_period(unit.estate.tz)
    wanted = [period]  # months before the wallet's first movement have nothing to show
    while len(wanted) < months and first is not None and previous_period(period) >= first:
        period = previous_period(period)
        wanted.append(period)
    issued = {row.period: row for row in session.execute(
        select(Statement.id, Statement.period, Statement.created_at, Statement.pdf_sha256)
        .where(Statement.unit_id == unit.id, Statement.period.in_(wanted)))}
    rows = []
    for period in wanted:
        found = issued.get(period)
        rows.append(MonthRow(period, month_label(period), found.id if found else None,
                             found.created_at if found else None, found.pdf_sha256 if found else None))
    return rows


def statement_pdf(session: Session, unit: Unit, period: str, *, levies: bool = True) -> tuple[bytes, str, bool]:
    """The unit's statement PDF for a month: the archived one, else a provisional rendering.

    `levies=False`: the tenant's copy, without the owner's levy section (`sees_levies`).
    """
    archived = session.scalar(select(Statement).where(
        Statement.unit_id == unit.id, Statement.period == period))
    filename = statement_filename(unit.estate.code, unit.number, period)
    if archived is not None:
        return (archived.pdf if levies else tenant_copy(session, archived)), filename, False
    from app.statements.figures import statement_for

    data = statement_for(session, unit, period)  # raises StatementPeriodError for future months
    return (render_statement(data, provisional=True, levies=levies),
            filename.replace(".pdf", "-provisional.pdf"), True)


@dataclass
class EstateStatementRow:
    """A unit's line on the staff statements page."""

    unit_id: int
    unit_number: str
    statement_id: int | None = None
    issued_at: object | None = None
    pdf_sha256: str | None = None
    discrepancy: str | None = None
    sent: int = 0
    logged: int = 0
    pending: int = 0
    failed: int = 0
    last_error: str | None = None


def estate_statement_rows(session: Session, estate: Estate, period: str) -> list[EstateStatementRow]:
    """Every unit of the estate with its statement of the month and the delivery outcome."""
    rows = {unit_id: EstateStatementRow(unit_id, number) for unit_id, number in session.execute(
        select(Unit.id, Unit.number).where(Unit.estate_id == estate.id).order_by(Unit.number))}
    for statement in session.execute(
            select(Statement.id, Statement.unit_id, Statement.created_at, Statement.pdf_sha256,
                   Statement.discrepancy)
            .where(Statement.estate_id == estate.id, Statement.period == period)):
        row = rows.get(statement.unit_id)
        if row is not None:
            row.statement_id, row.issued_at = statement.id, statement.created_at
            row.pdf_sha256, row.discrepancy = statement.pdf_sha256, statement.discrepancy
    by_statement = {row.statement_id: row for row in rows.values() if row.statement_id}
    for delivery in session.scalars(
            select(StatementDelivery).where(StatementDelivery.statement_id.in_(list(by_statement)))
            .order_by(StatementDelivery.id)):
        row = by_statement[delivery.statement_id]
        setattr(row, delivery.status, getattr(row, delivery.status) + 1)
        if delivery.status not in ("sent", "logged") and delivery.error:
            row.last_error = f"{delivery.to_address}: {delivery.error}"
    return list(rows.values())


def unit_transactions(session: Session, unit: Unit, limit: int = 5000, *, windows=None):
    """A unit's pocket postings in the viewer's windows, newest first (its transactions export)."""
    from app.models import Account, Wallet
    from app.reports.summaries import recent_pocket_activity

    pockets = session.scalars(select(Account.id).join(Wallet, Wallet.id == Account.wallet_id)
                              .where(Wallet.unit_id == unit.id)).all()
    return recent_pocket_activity(session, list(pockets), limit=limit, windows=windows)


def _transaction_columns():
    from app.labels import label
    from app.reports.export import Column, money_column

    return [
        Column("When", lambda r: r.occurred_at),
        Column("Kind", lambda r: label("transaction", r.kind)),
        Column("Description", lambda r: r.memo),
        Column("Pocket", lambda r: label("pocket", r.utility)),
        money_column("Amount", lambda r: r.amount, lambda r: r.commodity),
        Column("Transaction", lambda r: r.transaction_id, numeric=True),
    ]


TRANSACTION_COLUMNS = _transaction_columns()
