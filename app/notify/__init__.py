"""Notifications (X4): `notify()` is the one call; in-app rows, email over SMTP, an SMS outbox.

The package owns every message to a person: `email.py` (SMTP delivery by a job after the
caller commits), `sms.py` (the outbox the SMS gateway collects), in-app rows (written here,
read in the portal), and `budget_alerts.py` (tenants' low-balance and high-usage alerts,
sent through `notify()`). Outgoing webhooks join it.
"""
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs import enqueue_after_commit
from app.models import Notification, Person, User, utcnow
from app.notify.email import email_address
from app.notify.sms import sms_address, sms_text


def notify(session: Session, template: str, context: dict[str, Any], *,
           user: User | None = None, person: Person | None = None,
           channels: Iterable[str] = ("in_app", "email"), attachment: dict | None = None) -> list[Notification]:
    """Render `templates/notifications/<template>.txt` and queue it on each channel.

    `attachment` (email only) names a file made when the email is delivered: see
    `app.notify.email.attachment_of`."""
    person = person or (user.person if user else None)
    text = render_in_language(session, f"notifications/{template}.txt", context, person)
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
            subject=subject, body=body if channel != "sms" else sms_text(subject, body),
            status="sent" if channel == "in_app" else "pending",
            sent_at=utcnow() if channel == "in_app" else None,
            attachment=attachment if channel == "email" else None,
        )
        session.add(row)
        made.append(row)
    session.flush()
    for row in made:
        if row.channel == "email":
            enqueue_after_commit(session, "deliver_email", row.id, track=False)
    return made


def render_in_language(session: Session, template: str, context: dict[str, Any], person: Person | None) -> str:
    """Render a message in the person's language (else their estate's), money in its symbols (X8)."""
    estate = context.get("estate")
    estate_id = getattr(estate, "id", None) or getattr(person, "estate_id", None)
    with in_language(session, person, estate_id):
        return render_template(template, **context)


@contextmanager
def in_language(session: Session, person: Person | None = None, estate_id: int | None = None):
    """Inside the block gettext, money and dates are written for the person (X8); yields the language.

    Their language, else the estate's default (`estate_id`, else the person's estate), else
    English; money in the estate's own currency symbols. For emails built in code (statements,
    settlement parties) as `notify()` does for its templates."""
    from flask_babel import force_locale

    from app.i18n import language_for
    from app.i18n.formatting import symbols_of

    estate_id = estate_id if estate_id is not None else getattr(person, "estate_id", None)
    language = language_for(session, person, estate_id)
    with force_locale(language), symbols_of(session, [estate_id] if estate_id else []):
        yield language


def read_in_app(session: Session, user_id: int, limit: int = 50) -> list[Notification]:
    """The user's latest in-app notifications, marked read as they are shown; commits once."""
    rows = session.scalars(select(Notification).where(Notification.user_id == user_id,
                                                      Notification.channel == "in_app")
                           .order_by(Notification.id.desc()).limit(limit)).all()
    for row in rows:
        row.read_at = row.read_at or utcnow()
    session.commit()
    return rows


def _address(channel: str, user: User | None, person: Person | None) -> str | None:
    if channel == "email":
        return email_address(user, person)
    if channel == "sms":
        return sms_address(person)
    return None
