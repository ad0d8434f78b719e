"""Report subscriptions (issue 22 item 8, Quantify 1.7): any exportable report, emailed weekly or monthly.

A report is identified as its download link is: the endpoint of the page that offers
`?format=csv|pdf` (through `app.layers.export.respond`) and the page's arguments (path values,
filters, `table` for a page with several tables). A subscription stores exactly that, checked
against `REPORTS` (the pages whose exports make sense as a standing order) and by rendering the
report once as the subscriber: what they cannot open, they cannot subscribe to.

The `report_subscriptions` job (daily, app/job_schedule.py) renders each due report *as its
subscriber*, through the page's own view in a request of its own (`render_as`), so the page's
role gate and scope checks decide again at send time; a report the user can no longer see
(404, 403, a deactivated login) disables the subscription with the reason, shown on "My
subscriptions". The file goes out as an email attachment like a statement does (`send_email`).

Periods are the subscriber's: weeks and months in the timezone of their home estate (their
person's estate, else their first grant's: `app.i18n.home_estate_id`), in UTC for a login with
neither (staff). A weekly subscription is due once per ISO week (the first run from Monday),
a monthly one once per calendar month, starting with the period after the one it was made in.
The email is written in the subscriber's language (`app.i18n.language_for`: theirs, else their
home estate's, else English); the attached report is rendered as them, so in it too.
A `ReportDelivery` row per (subscription, period) makes a rerun in the same period send
nothing twice; a failed send is recorded on that row and tried again by the next run, and
never stops the other subscriptions. Every subscribe, cancel, send and disable is audited.
"""
from __future__ import annotations

import logging
import re
import smtplib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g
from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.routing import BuildError

from app import audit
from app.jobs import job
from app.models import User, utcnow
from app.models.subscriptions import (
    SUBSCRIPTION_FORMATS, SUBSCRIPTION_FREQUENCIES, ReportDelivery, ReportSubscription)

log = logging.getLogger(__name__)
SUBSCRIPTIONS_JOB = "report_subscriptions"
MAX_ARGS, MAX_ARG_CHARS = 12, 200
_ARG_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_NOT_ARGS = {"format", "part"}  # the download's own switch, and the htmx fragment selector

# The exportable reports one can subscribe to: endpoint -> what the list calls it. A page that
# gains `?format=csv|pdf` is added here (tests/reports/test_subscriptions.py checks every
# `export_links("...")` in the templates is).
REPORTS: dict[str, Any] = {
    "staff.index": _l("Staff overview: audit log"),
    "staff.ledger": _l("Ledger transactions"),
    "staff.statements": _l("Statements"),
    "staff.sources": _l("SparkMeter payments"),
    "staff.uisp_customers": _l("UISP customers"),
    "staff.uisp_customer": _l("UISP customer"),
    "staff.uisp_suspensions": _l("UISP suspensions"),
    "staff.payments": _l("Payments"),
    "staff.corrections": _l("Corrections"),
    "staff.metering": _l("Metering overview"),
    "staff.meter": _l("Meter"),
    "staff.meter_alerts": _l("Meter alerts"),
    "staff.relay_commands": _l("Relay commands"),
    "staff.dead_letters": _l("Dead letters"),
    "staff.api_key_list": _l("API keys"),
    "staff.tariffs": _l("Tariffs"),
    "staff.tariff": _l("Tariff version"),
    "staff.settlement_page": _l("Settlement"),
    "staff.settlement_statement": _l("Settlement party statement"),
    "admin.arrears": _l("Arrears"),
    "admin.units": _l("Units"),
    "admin.people": _l("People"),
    "admin.estate_meters_page": _l("Meters"),
    "agent.estate": _l("Estate figures"),
    "agent.api_key_list": _l("API keys"),
    "owner.reconciliation": _l("Revenue reconciliation"),
    "owner.usage": _l("Usage analytics"),
    "owner.vacancy": _l("Vacancy"),
    "owner.units_export": _l("Units"),
    "owner.transactions_export": _l("Unit transactions"),
    "body_corporate.estate": _l("Scheme dashboard"),
    "body_corporate.levies": _l("Levies"),
    "utility.finance": _l("Operator finance"),
    "utility.demand": _l("Demand"),
    "utility.losses": _l("Losses"),
    "utility.revenue": _l("Revenue assurance"),
    "utility.profiles": _l("Consumption profiles"),
    "utility.carbon": _l("Carbon"),
    "utility.solar": _l("Shared solar"),
    "admin.cohorts": _l("Debt cohort"),
    "tenant.usage": _l("Usage"),
    "tenant.transactions_export": _l("Transactions"),
}


class SubscriptionError(ValueError):
    """A subscription refused; `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(str(m) for m in errors.values()))
        self.errors = errors


class ReportNotVisible(SubscriptionError):
    """The user cannot open the report (404 to them, as another's object is)."""


@dataclass(frozen=True)
class Rendered:
    """A report rendered as a user: HTTP status, and the file when it is one."""

    status: int
    body: bytes = b""
    filename: str = ""
    mimetype: str = ""
    disposition: str = ""
    title_parts: dict | None = None  # the report's title as message parts (app/layers/export.py)

    @property
    def is_file(self) -> bool:
        """A download (the page's export), not the page itself."""
        return self.status == 200 and "attachment" in self.disposition and bool(self.body)


def report_args(raw: dict[str, str]) -> dict[str, str]:
    """The report arguments of a subscribe form (`arg.<name>` fields), checked; raises SubscriptionError."""
    args = {}
    for key, value in raw.items():
        if not key.startswith("arg."):
            continue
        name = key[4:]
        if name in _NOT_ARGS or value in ("", None):
            continue
        if not _ARG_NAME.fullmatch(name) or len(str(value)) > MAX_ARG_CHARS:
            raise SubscriptionError({"report": str(_l("This report's address is not one Meterwise makes."))})
        args[name] = str(value)
    if len(args) > MAX_ARGS:
        raise SubscriptionError({"report": str(_l("This report's address is not one Meterwise makes."))})
    return args


def check_request(app: Flask, endpoint: str, args: dict[str, str], frequency: str, file_format: str) -> str:
    """Check the report and choices; return the report's path for the download. Raises SubscriptionError."""
    errors = {}
    if endpoint not in REPORTS:
        errors["report"] = str(_l("This page's export cannot be subscribed to."))
    if frequency not in SUBSCRIPTION_FREQUENCIES:
        errors["frequency"] = str(_l("Choose weekly or monthly."))
    if file_format not in SUBSCRIPTION_FORMATS:
        errors["file_format"] = str(_l("Choose CSV or PDF."))
    if errors:
        raise SubscriptionError(errors)
    try:
        return report_path(app, endpoint, args, file_format)
    except (BuildError, ValueError):
        raise SubscriptionError({"report": str(_l("This report's address is not one Meterwise makes."))}) from None


def report_path(app: Flask, endpoint: str, args: dict[str, str], file_format: str) -> str:
    """The download's path and query, as the page's export link makes it."""
    adapter = app.url_map.bind("localhost")
    return adapter.build(endpoint, {**args, "format": file_format})


def render_as(app: Flask, user: User, endpoint: str, args: dict[str, str], file_format: str) -> Rendered:
    """Render the report through its own view, as `user` would download it (its own app context)."""
    path = report_path(app, endpoint, args, file_format)
    with app.app_context(), app.test_request_context(path, base_url="http://localhost"):
        g._login_user = user  # Flask-Login's current user for this request only
        response = app.full_dispatch_request()
        disposition = response.headers.get("Content-Disposition", "")
        name = disposition.split("filename=")[-1].strip('" ') if "filename=" in disposition else ""
        return Rendered(response.status_code, response.get_data() if response.status_code == 200 else b"",
                        name, response.mimetype, disposition, _parts_header(response.headers.get(TITLE_HEADER)))


TITLE_HEADER = "X-Report-Title"  # app.layers.export.TITLE_HEADER


def _parts_header(value: str | None) -> dict | None:
    import json

    from app.i18n.messages import is_message

    try:
        parts = json.loads(value) if value else None
    except ValueError:
        return None
    return parts if is_message(parts) else None


def subscribe(session: Session, app: Flask, user: User, endpoint: str, args: dict[str, str], frequency: str,
              file_format: str) -> ReportSubscription:
    """Subscribe `user` to a report they can open now; commits once. Raises SubscriptionError / ReportNotVisible."""
    check_request(app, endpoint, args, frequency, file_format)
    same = session.scalars(select(ReportSubscription).where(
        ReportSubscription.user_id == user.id, ReportSubscription.endpoint == endpoint,
        ReportSubscription.frequency == frequency, ReportSubscription.file_format == file_format,
        ReportSubscription.cancelled_at.is_(None), ReportSubscription.disabled_at.is_(None))).all()
    if any(s.args == args for s in same):
        raise SubscriptionError({"frequency": str(_l("You already receive this report this often in this format."))})
    rendered = render_as(app, user, endpoint, args, "csv")  # cheap, and the same gate as the PDF
    if not rendered.is_file:
        raise ReportNotVisible({"report": str(_l("You cannot open this report."))})
    subscription = ReportSubscription(user_id=user.id, endpoint=endpoint, args=args, frequency=frequency,
                                      file_format=file_format, title=report_title(endpoint, rendered.filename),
                                      title_parts=rendered.title_parts)
    session.add(subscription)
    session.flush()
    audit.record(session, "report_subscription.create", subscription, new={
        "endpoint": endpoint, "args": args, "frequency": frequency, "format": file_format})
    session.commit()
    return subscription


def report_title(endpoint: str, filename: str) -> str:
    """A readable name: the download's own name ("meter-sm01-readings.csv" -> "Meter sm01 readings")."""
    stem = filename.rsplit(".", 1)[0].replace("-", " ").strip()
    return (stem[:1].upper() + stem[1:])[:200] if stem else str(REPORTS.get(endpoint, endpoint))[:200]


def shown_title(subscription: ReportSubscription) -> str:
    """The subscription's name in the current language: its title's parts through the catalogues
    (the stored English name in English, and for subscriptions made before issue 23)."""
    from app.i18n import current_language
    from app.i18n.messages import is_message, render

    parts = subscription.title_parts
    if not is_message(parts) or current_language() == "en":
        return subscription.title
    return render(parts)[:200] or subscription.title


def cancel(session: Session, subscription: ReportSubscription) -> bool:
    """Cancel a subscription (kept, with its deliveries); commits once. False when it was already cancelled."""
    if subscription.cancelled_at is not None:
        return False
    subscription.cancelled_at = utcnow()
    audit.record(session, "report_subscription.cancel", subscription, new={"title": subscription.title})
    session.commit()
    return True


def subscriptions_of(session: Session, user_id: int) -> list[ReportSubscription]:
    """A user's subscriptions, active first, newest first."""
    rows = session.scalars(select(ReportSubscription).where(ReportSubscription.user_id == user_id)
                           .order_by(ReportSubscription.id.desc())).all()
    return sorted(rows, key=lambda s: not s.active)


def last_deliveries(session: Session, subscription_ids: list[int]) -> dict[int, ReportDelivery]:
    """The newest delivery of each subscription."""
    found: dict[int, ReportDelivery] = {}
    if subscription_ids:
        for row in session.scalars(select(ReportDelivery).where(ReportDelivery.subscription_id.in_(subscription_ids))
                                   .order_by(ReportDelivery.id)):
            found[row.subscription_id] = row
    return found


# --- sending ------------------------------------------------------------------------------


def subscriber_timezone(session: Session, user: User | None) -> tzinfo:
    """The zone a subscriber's weeks and months are counted in: their home estate's, else UTC."""
    from app.i18n import home_estate_id
    from app.models import Estate

    estate_id = home_estate_id(session, user) if user is not None else None
    estate = session.get(Estate, estate_id) if estate_id is not None else None
    return ZoneInfo(estate.timezone) if estate is not None else UTC


def period_of(frequency: str, moment: datetime, tz: tzinfo = UTC) -> str:
    """The period a moment falls in: ISO week "2026-W49" or month "2026-12", in `tz`."""
    moment = moment.astimezone(tz)
    if frequency == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year}-{moment.month:02d}"


def is_due(session: Session, subscription: ReportSubscription, now: datetime, tz: tzinfo | None = None) -> bool:
    """Active, in a period after the one it was made in, and not yet sent for this period."""
    if not subscription.active:
        return False
    tz = tz or subscriber_timezone(session, session.get(User, subscription.user_id))
    period = period_of(subscription.frequency, now, tz)
    if period == period_of(subscription.frequency, subscription.created_at, tz):
        return False
    return session.scalar(select(ReportDelivery.id).where(
        ReportDelivery.subscription_id == subscription.id, ReportDelivery.period == period,
        ReportDelivery.status.in_(("sent", "logged")))) is None


def next_send(session: Session, subscription: ReportSubscription, now: datetime) -> date | None:
    """The subscriber's local day the next email goes out (None once cancelled or stopped): today when
    due, else the next period's first day."""
    if not subscription.active:
        return None
    tz = subscriber_timezone(session, session.get(User, subscription.user_id))
    today = now.astimezone(tz).date()
    if is_due(session, subscription, now, tz):
        return today
    if subscription.frequency == "weekly":
        return today + timedelta(days=7 - today.weekday())
    return date(today.year + today.month // 12, today.month % 12 + 1, 1)


@dataclass
class SendReport:
    sent: int = 0
    disabled: int = 0
    failed: int = 0
    not_due: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"Report subscriptions: {self.sent} sent, {self.disabled} disabled (no longer visible), "
                f"{self.failed} failed, {self.not_due} not due")


def send_due(session: Session, app: Flask, *, now: datetime | None = None, progress=None) -> SendReport:
    """Email every due subscription's report; one commit per subscription, a failure never stops the rest."""
    now = now or utcnow()
    report = SendReport()
    ids = session.scalars(select(ReportSubscription.id).where(
        ReportSubscription.cancelled_at.is_(None), ReportSubscription.disabled_at.is_(None))
        .order_by(ReportSubscription.id)).all()
    if progress:
        progress.set_total(len(ids))
    for subscription_id in ids:
        subscription = session.get(ReportSubscription, subscription_id)
        try:
            tz = subscriber_timezone(session, session.get(User, subscription.user_id))
            if not is_due(session, subscription, now, tz):
                report.not_due += 1
            else:
                outcome = _send_one(session, app, subscription, period_of(subscription.frequency, now, tz), tz, now)
                setattr(report, outcome, getattr(report, outcome) + 1)
            session.commit()
        except Exception as error:  # one broken report never blocks the others
            session.rollback()
            log.exception("report subscription %s failed", subscription_id)
            report.failed += 1
            message = f"subscription {subscription_id}: {type(error).__name__}: {error}"
            report.errors.append(message)
            if progress:
                progress.error(message)
            _record_failure(session, subscription_id, now, message)
        if progress:
            progress.step()
    return report


def _send_one(session: Session, app: Flask, subscription: ReportSubscription, period: str,
              tz: tzinfo = UTC, now: datetime | None = None) -> str:
    """Render and email one subscription's report for `period`; return "sent", "disabled" or "failed"."""
    user = session.get(User, subscription.user_id)
    if user is None or not user.is_active:
        return _disable(session, subscription, str(_l("The login is no longer active.")))
    if subscription.endpoint not in REPORTS:
        return _disable(session, subscription, str(_l("This report can no longer be subscribed to.")))
    rendered = render_as(app, user, subscription.endpoint, subscription.args, subscription.file_format)
    if rendered.status in (401, 403, 404) or 300 <= rendered.status < 400:
        return _disable(session, subscription, str(_l(
            "You can no longer open this report (it answered HTTP %(status)s).", status=rendered.status)))
    delivery = _delivery(session, subscription, period)
    delivery.attempts += 1
    if not rendered.is_file:
        delivery.status, delivery.error = "failed", f"the report answered HTTP {rendered.status}, not a file"
        return "failed"
    from app.notify.email import email_address, send_email

    to = email_address(user, user.person)
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    subject, body = email_text(session, user, subscription, period, now or utcnow(), tz)
    message["Subject"] = subject
    message.set_content(body)
    stem, _, extension = (rendered.filename or f"report.{subscription.file_format}").rpartition(".")
    maintype, _, subtype = (rendered.mimetype or "application/octet-stream").partition("/")
    message.add_attachment(rendered.body, maintype=maintype, subtype=subtype,
                           filename=f"{stem or 'report'}-{period}.{extension}")
    delivery.to_address = to
    try:
        outcome = send_email(message)
    except (OSError, smtplib.SMTPException) as error:
        delivery.status, delivery.error = "failed", f"{type(error).__name__}: {error}"[:2000]
        audit.record(session, "report_subscription.failed", subscription, new={"period": period,
                                                                               "error": delivery.error})
        return "failed"
    delivery.status, delivery.error, delivery.at = outcome, None, utcnow()
    subscription.last_sent_at = delivery.at
    audit.record(session, "report_subscription.sent", subscription, new={"period": period, "to": to,
                                                                         "outcome": outcome})
    return "sent"


def email_text(session: Session, user: User, subscription: ReportSubscription, period: str, moment: datetime,
               tz: tzinfo) -> tuple[str, str]:
    """The email's subject and body in the subscriber's language, the time in their zone."""
    from app.i18n import home_estate_id
    from app.i18n.formatting import local_date
    from app.notify import in_language

    local = moment.astimezone(tz)
    with in_language(session, user.person, home_estate_id(session, user)) as language:
        when = f"{local_date(local, '%d %b %Y %H:%M', language)} {local.tzname()}"
        values = {"title": shown_title(subscription), "period": period, "when": when}
        if subscription.frequency == "weekly":
            subject = gettext("%(title)s: your weekly report (%(period)s)", **values)
            why = gettext("You receive it every week because you subscribed to it; cancel it under "
                          "My subscriptions in Meterwise.")
        else:
            subject = gettext("%(title)s: your monthly report (%(period)s)", **values)
            why = gettext("You receive it every month because you subscribed to it; cancel it under "
                          "My subscriptions in Meterwise.")
        body = "\n\n".join([gettext("Hello,"), gettext("Attached is %(title)s, as of %(when)s.", **values) + "\n" + why,
                             "Meterwise"]) + "\n"
    return subject, body


def _delivery(session: Session, subscription: ReportSubscription, period: str) -> ReportDelivery:
    row = session.scalar(select(ReportDelivery).where(ReportDelivery.subscription_id == subscription.id,
                                                      ReportDelivery.period == period))
    if row is None:
        row = ReportDelivery(subscription_id=subscription.id, period=period, status="failed", attempts=0)
        session.add(row)
    return row


def _disable(session: Session, subscription: ReportSubscription, reason: str) -> str:
    subscription.disabled_at, subscription.disabled_reason = utcnow(), reason
    audit.record(session, "report_subscription.disable", subscription, new={"reason": reason})
    return "disabled"


def _record_failure(session: Session, subscription_id: int, now: datetime, message: str) -> None:
    """Note an unexpected failure on the period's delivery row (best effort, own commit)."""
    try:
        subscription = session.get(ReportSubscription, subscription_id)
        if subscription is None:
            return
        tz = subscriber_timezone(session, session.get(User, subscription.user_id))
        delivery = _delivery(session, subscription, period_of(subscription.frequency, now, tz))
        delivery.attempts += 1
        delivery.status, delivery.error = "failed", message[:2000]
        session.commit()
    except Exception:  # the failure is already logged and counted
        session.rollback()


@job(SUBSCRIPTIONS_JOB)
def report_subscriptions_job(session: Session, progress) -> str:
    """Worker job: email the reports whose week or month has come; a rerun in the same period sends nothing."""
    return send_due(session, current_app._get_current_object(), progress=progress).summary()


def seed_demo_subscriptions(session: Session, now: datetime) -> None:
    """Demo rows for My subscriptions (the staff login): a weekly PDF sent, a monthly CSV, one stopped; the caller commits."""
    staff = session.scalar(select(User).where(User.email == "staff@demo.meterwise.local"))
    if staff is None:
        return
    week_ago = now - timedelta(days=9)
    sent = ReportSubscription(user_id=staff.id, endpoint="staff.metering", args={}, title="Meters",
                              frequency="weekly", file_format="pdf", created_at=week_ago,
                              last_sent_at=now - timedelta(days=2))
    monthly = ReportSubscription(user_id=staff.id, endpoint="staff.ledger", args={}, title="Ledger transactions",
                                 frequency="monthly", file_format="csv", created_at=now - timedelta(days=1))
    stopped = ReportSubscription(user_id=staff.id, endpoint="staff.meter", args={"meter_id": "999999", "table": "readings"},
                                 title="Meter readings (a meter since removed)", frequency="weekly", file_format="csv",
                                 created_at=week_ago, disabled_at=now - timedelta(days=2),
                                 disabled_reason="You can no longer open this report (it answered HTTP 404).")
    session.add_all([sent, monthly, stopped])
    session.flush()
    session.add(ReportDelivery(subscription_id=sent.id, period=period_of("weekly", now - timedelta(days=2)),
                               status="logged", attempts=1, to_address=staff.email, at=now - timedelta(days=2)))
