"""Outage and maintenance notices (issue 15, item 7): an agent tells the tenants of an estate or a block.

`reach()` counts whom a notice would reach before it is sent: the current tenants of the
estate's units (of the block: a unit-number prefix, as the bulk top-up filters), each person
once however many units they rent, and how many of them by SMS (a phone) and by email (an
address). `send_notice()` checks the form, records the `Notice` with those counts (audited)
and sends it through `notify()` on the channels chosen: inline for a few people, as the
`send_notice` job with the progress panel above INLINE_PEOPLE. The job resumes where it
stopped (`Notice.done`), so a retried job never messages a person twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import audit
from app.jobs import Progress, job
from app.models import Estate, Person, Tenancy, Unit, User, utcnow
from app.models.notices import NOTICE_CHANNELS, NOTICE_KINDS, Notice

INLINE_PEOPLE = 50  # more recipients than this: sent by the job
CHUNK = 200  # recipients per commit in the job
JOB = "send_notice"
MAX_SUBJECT = 120
MAX_MESSAGE = 1000  # an SMS carries the subject and the first part of the message
MAX_BLOCK = 32


class NoticeError(ValueError):
    """A notice the rules refuse; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class Reach:
    """Whom a notice reaches: people, and how many of them by SMS and by email."""

    people: int
    by_sms: int
    by_email: int
    units: int


def recipients(session: Session, estate: Estate, block: str = "", today: date | None = None
               ) -> list[tuple[Person, User | None]]:
    """The current tenants of the estate's units (those whose number starts with `block`), once each."""
    today = today or utcnow().astimezone(estate.tz).date()
    prefix = (block or "").strip().lower()
    rows = session.execute(
        select(Unit.number, Tenancy.person_id).join(Tenancy, Tenancy.unit_id == Unit.id).where(
            Unit.estate_id == estate.id, Tenancy.move_in <= today,
            or_(Tenancy.move_out.is_(None), Tenancy.move_out > today))).all()
    person_ids = sorted({person_id for number, person_id in rows if number.lower().startswith(prefix)})
    if not person_ids:
        return []
    persons = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(person_ids)))}
    users = {u.person_id: u for u in session.scalars(select(User).where(
        User.person_id.in_(person_ids), User.active.is_(True)))}
    return [(persons[i], users.get(i)) for i in person_ids]


def units_in(session: Session, estate: Estate, block: str = "") -> int:
    prefix = (block or "").strip().lower()
    return sum(1 for number in session.scalars(select(Unit.number).where(Unit.estate_id == estate.id))
               if number.lower().startswith(prefix))


def channels_for(person: Person, user: User | None, channels: tuple[str, ...]) -> tuple[str, ...]:
    """The chosen channels this person can be reached on."""
    from app.notify.email import email_address
    from app.notify.sms import sms_address

    return tuple(c for c in channels if (c == "sms" and sms_address(person))
                 or (c == "email" and email_address(user, person)))


def reach(session: Session, estate: Estate, block: str = "", channels: tuple[str, ...] = NOTICE_CHANNELS) -> Reach:
    """How many people a notice to the estate (or block) reaches, and how, before it is sent."""
    people = recipients(session, estate, block)
    ways = [channels_for(person, user, channels) for person, user in people]
    return Reach(people=sum(1 for w in ways if w), by_sms=sum(1 for w in ways if "sms" in w),
                 by_email=sum(1 for w in ways if "email" in w), units=units_in(session, estate, block))


def check_notice(estate: Estate, form: dict) -> dict:
    """The form's values checked (kind, block, subject, message, channels, optional times); NoticeError lists each problem."""
    from app.estates.meters import parse_local_time

    errors: dict[str, str] = {}
    kind = str(form.get("kind") or "")
    if kind not in NOTICE_KINDS:
        errors["kind"] = "Choose outage or maintenance."
    block = str(form.get("block") or "").strip()
    if len(block) > MAX_BLOCK:
        errors["block"] = f"A block is a unit-number prefix of at most {MAX_BLOCK} characters."
    subject = " ".join(str(form.get("subject") or "").split())
    if not subject:
        errors["subject"] = "Write a short subject, e.g. Water off in Block B on Tuesday."
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = f"Keep the subject to {MAX_SUBJECT} characters."
    message = str(form.get("message") or "").strip().replace("\r\n", "\n")
    if not message:
        errors["message"] = "Write what will happen, when, and whom to call."
    elif len(message) > MAX_MESSAGE:
        errors["message"] = f"Keep the message to {MAX_MESSAGE} characters (an SMS carries its start)."
    channels = tuple(c for c in NOTICE_CHANNELS if c in (form.get("channels") or ()))
    if not channels:
        errors["channels"] = "Send it by SMS, by email, or both."
    times = {}
    for name in ("starts_at", "ends_at"):
        text = str(form.get(name) or "").strip()
        times[name] = parse_local_time(text, estate, name, errors) if text else None
    if times["starts_at"] and times["ends_at"] and times["ends_at"] <= times["starts_at"]:
        errors["ends_at"] = "The end must be after the start."
    if errors:
        raise NoticeError(errors)
    return {"kind": kind, "block": block, "subject": subject, "message": message, "channels": list(channels),
            **times}


def send_notice(session: Session, estate: Estate, form: dict, *, user_id: int | None = None):
    """Record the notice (audited) and send it now, or as a job when many are reached; commits.

    Returns (notice, JobRun or None). Refuses a notice that reaches nobody.
    """
    values = check_notice(estate, form)
    counted = reach(session, estate, values["block"], tuple(values["channels"]))
    if not counted.people:
        where = f"block {values['block']}" if values["block"] else estate.name
        raise NoticeError({"block": f"No tenant of {where} can be reached by "
                                    + " or ".join(values["channels"]).replace("sms", "SMS") + "."})
    notice = Notice(estate_id=estate.id, created_by_user_id=user_id, people=counted.people,
                    by_sms=counted.by_sms, by_email=counted.by_email, **values)
    session.add(notice)
    session.flush()
    audit.record(session, "notice.sent", notice, estate_id=estate.id,
                 new={"kind": notice.kind, "block": notice.block or "(whole estate)", "subject": notice.subject,
                      "people": counted.people, "sms": counted.by_sms, "email": counted.by_email})
    session.commit()
    if counted.people <= INLINE_PEOPLE:
        deliver_notice(session, notice.id)
        return notice, None
    from app.jobs import enqueue
    return notice, enqueue(JOB, notice.id, target=f"notice:{notice.id}", user_id=user_id)


def deliver_notice(session: Session, notice_id: int, progress: Progress | None = None) -> Notice:
    """Message each recipient not yet handled through `notify()`, CHUNK per commit."""
    from app.notify import notify

    notice = session.get(Notice, notice_id)
    estate = session.get(Estate, notice.estate_id)
    people = recipients(session, estate, notice.block, today=notice.created_at.astimezone(estate.tz).date())
    if progress:
        progress.set_total(len(people))
        progress.step(min(notice.done, len(people)))
    context = {"notice": notice, "estate": estate}
    for start in range(notice.done, len(people), CHUNK):
        part = people[start:start + CHUNK]
        for person, user in part:
            ways = channels_for(person, user, tuple(notice.channels))
            if ways:
                notify(session, "estate_notice", context, user=user, person=person, channels=ways)
        notice.done = start + len(part)
        session.commit()
        if progress:
            progress.step(len(part))
    notice.status, notice.sent_at = "sent", notice.sent_at or utcnow()
    session.commit()
    return notice


def notices_of(session: Session, estate: Estate, limit: int = 100) -> list[Notice]:
    """The estate's notices, newest first."""
    return list(session.scalars(select(Notice).where(Notice.estate_id == estate.id)
                                .order_by(Notice.id.desc()).limit(limit)))


def notice_of(session: Session, estate: Estate, notice_id: int) -> Notice | None:
    """The estate's notice, else None (the view answers 404)."""
    from app.routing import INTEGER_MAX

    if not 0 < notice_id <= INTEGER_MAX:
        return None
    return session.scalar(select(Notice).where(Notice.id == notice_id, Notice.estate_id == estate.id))


@job(JOB)
def send_notice_job(session: Session, progress: Progress, notice_id: int) -> str:
    """Send a notice to many tenants (resumes after the last recipient handled on a retry)."""
    notice = deliver_notice(session, notice_id, progress)
    return f"Notice sent to {notice.people} people ({notice.by_sms} by SMS, {notice.by_email} by email)"
