"""Notifications (X4): `notify()` is the one call; in-app rows, email over SMTP, an SMS outbox.

In-app rows are read in the portal. Emails are delivered by a job after the caller commits
(MAIL_URL smtp[s]://user:pass@host:port; without it they are written to the log). SMS rows
wait in the outbox, from which the SMS gateway collects them.
"""
import logging
import smtplib
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlparse

from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs import enqueue_after_commit, job
from app.models import Notification, Person, User, utcnow

log = logging.getLogger(__name__)
MAX_EMAIL_ATTEMPTS = 4


def read_in_app(session: Session, user_id: int, limit: int = 50) -> list[Notification]:
    """The user's latest in-app notifications, marked read as they are shown; commits once."""
    rows = session.scalars(select(Notification).where(Notification.user_id == user_id,
                                                      Notification.channel == "in_app")
                           .order_by(Notification.id.desc()).limit(limit)).all()
    for row in rows:
        row.read_at = row.read_at or utcnow()
    session.commit()
    return rows


def notify(session: Session, template: str, context: dict[str, Any], *,
           user: User | None = None, person: Person | None = None,
           channels: Iterable[str] = ("in_app", "email")) -> list[Notification]:
    """Render `templates/notifications/<template>.txt` and queue it on each channel."""
    person = person or (user.person if user else None)
    text = render_template(f"notifications/{template}.txt", **context)
    subject, _, body = text.partition("\n")
    subject = subject.removeprefix("Subject:").strip()
    body = body.strip()
    made = []
    for channel in channels:
        address = _address(channel, user, person)
        if channel != "in_app" and not address:
            continue  # nobody to send to on this channel
        row = Notification(
            user_id=user.id if user else None, person_id=person.id if person else None,
            channel=channel, template=template, to_address=address,
            subject=subject, body=body if channel != "sms" else f"{subject}. {body}"[:480],
            status="sent" if channel == "in_app" else "pending",
            sent_at=utcnow() if channel == "in_app" else None,
        )
        session.add(row)
        made.append(row)
    session.flush()
    for row in made:
        if row.channel == "email":
            enqueue_after_commit(session, "deliver_email", row.id, track=False)
    return made


def _address(channel: str, user: User | None, person: Person | None) -> str | None:
    if channel == "email":
        return (person.email if person and person.email else None) or (user.email if user else None)
    if channel == "sms":
        return person.phone if person else None
    return None


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
