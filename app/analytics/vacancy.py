"""Vacancy tracking (O4): units by status now, the change history, and vacancy rate per month.

The rate of a month is unit-time vacant / unit-time known, measured to the second between
the local month's boundaries in each unit's estate timezone, so a unit that changed on the
11th counts a third of the month one way and the rest the other. A unit's status is known
from its first recorded change on (before that only its status at creation, which nothing
records, so that time is left out); a unit that never changed has had its current status
since it was created. The current month is counted up to now.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import Estate, OccupancyChange, Unit, utcnow
from app.models.estate import OCCUPANCY_STATUSES
from app.periods import month_bounds, months_back

HISTORY_PER_PAGE = 25


@dataclass
class VacancyMonth:
    period: str
    seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in OCCUPANCY_STATUSES})

    @property
    def unit_days(self) -> Decimal:
        return Decimal(sum(self.seconds.values()) / 86400).quantize(Decimal("0.1"))

    def percent(self, status: str) -> Decimal | None:
        """The share of known unit-time in `status`, to one decimal; None when nothing is known."""
        whole = sum(self.seconds.values())
        if not whole:
            return None
        return (Decimal(self.seconds[status]) * 100 / Decimal(whole)).quantize(Decimal("0.1"))

    @property
    def vacancy_percent(self) -> Decimal | None:
        return self.percent("vacant")

    @property
    def occupied_percent(self) -> Decimal | None:
        return self.percent("occupied")

    @property
    def maintenance_percent(self) -> Decimal | None:
        return self.percent("maintenance")


def status_intervals(created_at: datetime, current: str, changes: list[tuple[datetime, str]],
                     now: datetime) -> list[tuple[datetime, datetime, str]]:
    """A unit's known statuses as (from, to, status) intervals up to now."""
    if not changes:
        return [(created_at, now, current)] if created_at < now else []
    intervals = []
    for (start, status), following in zip(changes, [*changes[1:], (now, None)], strict=True):
        end = min(following[0], now)
        if start < end:
            intervals.append((start, end, status))
    return intervals


def vacancy_by_month(session: Session, unit_ids: Select, last_period: str, months: int = 12,
                     now: datetime | None = None) -> list[VacancyMonth]:
    """Unit-time per status and vacancy rate for the `months` local months ending with `last_period`."""
    now = now or utcnow()
    periods = months_back(last_period, months)
    result = {p: VacancyMonth(p) for p in periods}
    units = session.execute(select(Unit.id, Unit.created_at, Unit.occupancy_status, Estate.timezone)
                            .join(Estate, Estate.id == Unit.estate_id).where(Unit.id.in_(unit_ids))).all()
    if not units:
        return list(result.values())
    changes: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for unit_id, changed_at, status in session.execute(
            select(OccupancyChange.unit_id, OccupancyChange.changed_at, OccupancyChange.status)
            .where(OccupancyChange.unit_id.in_(unit_ids))
            .order_by(OccupancyChange.unit_id, OccupancyChange.changed_at, OccupancyChange.id)):
        changes[unit_id].append((changed_at, status))
    bounds: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for unit in units:
        for start, end, status in status_intervals(unit.created_at, unit.occupancy_status, changes[unit.id], now):
            for period in periods:
                key = (period, unit.timezone)
                if key not in bounds:
                    bounds[key] = month_bounds(period, unit.timezone)
                month_start, month_end = bounds[key]
                overlap = (min(end, month_end) - max(start, month_start)).total_seconds()
                if overlap > 0 and status in result[period].seconds:
                    result[period].seconds[status] += overlap
    return list(result.values())


@dataclass
class StatusRow:
    unit_id: int
    number: str
    estate_name: str
    status: str
    since: datetime | None
    timezone: str


def current_statuses(session: Session, unit_ids: Select) -> list[StatusRow]:
    """Every unit's status now and since when (its latest recorded change)."""
    latest = (select(OccupancyChange.unit_id, func.max(OccupancyChange.changed_at).label("since"))
              .where(OccupancyChange.unit_id.in_(unit_ids)).group_by(OccupancyChange.unit_id).subquery())
    rows = session.execute(
        select(Unit.id, Unit.number, Estate.name, Unit.occupancy_status, latest.c.since, Estate.timezone)
        .join(Estate, Estate.id == Unit.estate_id)
        .outerjoin(latest, latest.c.unit_id == Unit.id)
        .where(Unit.id.in_(unit_ids)).order_by(Estate.name, Unit.number))
    return [StatusRow(*row) for row in rows]


@dataclass
class ChangeRow:
    changed_at: datetime
    unit_id: int
    number: str
    estate_name: str
    timezone: str
    status: str


def change_history(session: Session, unit_ids: Select, page: int,
                   per_page: int = HISTORY_PER_PAGE) -> tuple[list[ChangeRow], int]:
    """One page of occupancy changes, newest first, and the number of pages."""
    total = session.scalar(select(func.count(OccupancyChange.id)).where(OccupancyChange.unit_id.in_(unit_ids))) or 0
    pages = max(1, -(-total // per_page))
    rows = session.execute(
        select(OccupancyChange.changed_at, Unit.id, Unit.number, Estate.name, Estate.timezone,
               OccupancyChange.status)
        .join(Unit, Unit.id == OccupancyChange.unit_id)
        .join(Estate, Estate.id == Unit.estate_id)
        .where(OccupancyChange.unit_id.in_(unit_ids))
        .order_by(OccupancyChange.changed_at.desc(), OccupancyChange.id.desc())
        .limit(per_page).offset((min(page, pages) - 1) * per_page))
    return [ChangeRow(*row) for row in rows], pages
