"""Read models over the UISP copy for staff pages: suspensions, customer search, freshness."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import Estate, JobRun, utcnow
from app.models.sources import SERVICE_SUSPENDED, UispClient, UispService
from app.periods import shift_month
from app.routing import whole_number

REFRESH_KIND = "uisp_refresh"


def refresh_target(kind: str, value: int | None = None) -> str:
    """The job argument for a refresh of everything, one estate or one customer."""
    return "all" if kind == "all" else f"{kind}:{value}"


def job_target(target: str) -> str:
    """The JobRun target under which presses of the same refresh join one run."""
    return f"uisp:{target}"


def grace_date(day: int | None, today: date) -> date | None:
    """The next date on or after `today` falling on the client's grace payment day."""
    if not day:
        return None
    year, month = today.year, today.month
    for _ in range(2):
        candidate = date(year, month, min(day, calendar.monthrange(year, month)[1]))
        if candidate >= today:
            return candidate
        year, month = shift_month(year, month, 1)
    return None


@dataclass(frozen=True)
class Suspension:
    service: UispService
    client: UispClient
    estate_name: str | None
    grace: date | None


def suspensions(session: Session, estate_id: int | None = None, today: date | None = None) -> list[Suspension]:
    """Live suspended services with their customer, most outstanding first."""
    today = today or date.today()
    query = (select(UispService, UispClient, Estate.name)
             .join(UispClient, UispClient.uisp_id == UispService.client_uisp_id)
             .outerjoin(Estate, Estate.id == UispClient.estate_id)
             .where(UispService.status == SERVICE_SUSPENDED, UispService.removed_at.is_(None),
                    UispClient.removed_at.is_(None))
             .order_by(UispClient.account_outstanding.desc(), UispClient.uisp_id))
    if estate_id is not None:
        query = query.where(UispClient.estate_id == estate_id)
    return [Suspension(service, client, name, grace_date(client.grace_payment_day, today))
            for service, client, name in session.execute(query)]


def find_clients(session: Session, text: str = "", estate_id: int | None = None,
                 limit: int = 50) -> list[UispClient]:
    """Clients whose name, e-mail, user ident or UISP id matches `text`."""
    query = select(UispClient).order_by(UispClient.name, UispClient.uisp_id).limit(limit)
    text = text.strip()
    if text:
        like = f"%{text.lower()}%"
        conditions = [func.lower(UispClient.name).like(like), func.lower(UispClient.email).like(like),
                      func.lower(UispClient.user_ident).like(like)]
        if whole_number(text) is not None:
            conditions.append(UispClient.uisp_id == int(text))
        query = query.where(or_(*conditions))
    if estate_id is not None:
        query = query.where(UispClient.estate_id == estate_id)
    return list(session.scalars(query))


def last_full_refresh(session: Session) -> JobRun | None:
    """The last finished refresh of all of UISP."""
    return session.scalar(select(JobRun).where(
        JobRun.kind == REFRESH_KIND, JobRun.target == job_target("all"), JobRun.status == "done")
        .order_by(JobRun.id.desc()))


def running_refresh(session: Session, target: str) -> JobRun | None:
    """The refresh of `target` queued or running now, if any (a new press joins it)."""
    return session.scalar(select(JobRun).where(
        JobRun.kind == REFRESH_KIND, JobRun.target == job_target(target),
        JobRun.status.in_(("queued", "running"))).order_by(JobRun.id.desc()))


def is_stale(run: JobRun | None, hours: int, now: datetime | None = None) -> bool:
    """Whether the copy is older than `hours` (or was never refreshed)."""
    if run is None or run.finished_at is None:
        return True
    return (now or utcnow()) - run.finished_at > timedelta(hours=hours)
