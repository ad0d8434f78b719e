"""Email notifications: delivery over SMTP by the `deliver_email` job, after the caller commits.

MAIL_URL smtp[s]://user:pass@host:port[?starttls]; without it an email is written to the log
(`describe_email`) and marked "logged". `send_email` is also used for statements and anchors.
"""
import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

from flask import current_app
from sqlalchemy.orm import Session

from app.jobs import job
from app.models import Notification, Person, User, utcnow

log = logging.getLogger(__name__)
MAX_EMAIL_ATTEMPTS = 4


def email_address(user: User | None, person: Person | None) -> str | None:
    """The address an email goes to: the person's own, else the login's."""
    return (person.email if person and person.email else None) or (user.email if user else None)


@job("deliver_email")
def deliver_email(session: Session, progress, notification_id: int) -> str:
    """Send one email notification; failures are counted and retried by the queue."""
    row = session.get(Notification, notification_id)
    if row is None or row.status in (SENT, LOGGED):
        return "nothing to send"
    row.attempts += 1
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message.set_content(row.body)
    if row.attachment:
        from app.notify import in_language

        person = session.get(Person, row.person_id) if row.person_id else None
        with in_language(session, person):  # a provisional statement: in the recipient's language, like the text
            made = attachment_of(session, row.attachment)
        if made is not None:
            message.add_attachment(made[0], maintype="application", subtype="pdf", filename=made[1])
    try:
        outcome = send_email(message)
    except (OSError, smtplib.SMTPException) as error:
        row.error = f"{type(error).__name__}: {error}"
        row.status = "failed" if row.attempts >= MAX_EMAIL_ATTEMPTS else "pending"
        session.commit()
        raise
    row.status, row.sent_at, row.error = outcome, utcnow() if outcome == SENT else None, None
    session.commit()
    return f"sent to {row.to_address}" if outcome == SENT else f"written to the log for {row.to_address} (MAIL_URL unset)"


def attachment_of(session: Session, attachment: dict) -> tuple[bytes, str] | None:
    """The PDF a notification's `attachment` names (bytes, file name), else None (logged).

    {"kind": "statement", "unit_id", "period"}: the unit's statement of the month through the
    statement renderer (the archived one, else a provisional one), e.g. a move-out's final statement.
    """
    from app.models import Unit

    if attachment.get("kind") != "statement":
        log.warning("unknown attachment %r: the email goes without it", attachment)
        return None
    from app.statements.figures import StatementPeriodError
    from app.statements.runs import statement_pdf

    unit = session.get(Unit, attachment.get("unit_id"))
    if unit is None:
        return None
    try:
        pdf, filename, _provisional = statement_pdf(session, unit, str(attachment.get("period")))
    except (StatementPeriodError, ValueError) as error:
        log.warning("statement for unit %s %s not attached: %s", unit.id, attachment.get("period"), error)
        return None
    return pdf, filename


SENT, LOGGED = "sent", "logged"  # what send_email did: handed to SMTP, or only written to the log


def send_email(message: EmailMessage) -> str:
    """Send over SMTP per MAIL_URL and return "sent", or write it to the log and return "logged".

    A failure to send raises (OSError, SMTPException): the caller records it as failed.
    """
    url = current_app.config.get("MAIL_URL")
    if not url:
        log.info("email (MAIL_URL unset, not sent):\n%s", describe_email(message))
        return LOGGED
    parts = urlparse(url)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25),
                    timeout=15) as smtp:
        if "starttls" in (parts.query or ""):
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)
    return SENT


def describe_email(message: EmailMessage) -> str:
    """The message as a person reads it: headers, text, and each attachment's name and size.

    An attachment's bytes are left out: one statement PDF was a hundred lines of base64."""
    lines = [f"{name}: {message[name]}" for name in ("From", "To", "Subject") if message[name]]
    body = message.get_body(preferencelist=("plain",))
    lines += ["", body.get_content().rstrip() if body is not None else ""]
    for part in message.iter_attachments():
        size = len(part.get_payload(decode=True) or b"")
        lines.append(f"[attachment {part.get_filename() or 'unnamed'} · {part.get_content_type()} · "
                     f"{size:,} bytes]")
    return "\n".join(lines)
