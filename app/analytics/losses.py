"""Losses (U1, U2): each bulk meter's day against the sum of the unit meters it supplies.

A daily job (`utility_losses`) stores one `LossDay` per estate, utility and local day from
the daily roll-ups (M5), so the utility pages read summaries. A day on which any bulk or unit
meter live that day sent no readings is *incomplete*: its difference is shown but never
reported as loss. A complete day whose loss % is above the estate's threshold is over; the
first over day of an episode (the previous complete day was not over) alerts the estate's
utility users and staff once; later days of the same episode do not.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from app.models import ConsumptionRollup, Estate, Meter, RoleGrant, User, utcnow
from app.models.utility import LossDay
from app.reports.summaries import loss_threshold

RECOMPUTE_DAYS = 3  # readings arrive late (imports, spooled gateways): the job redoes recent days
UTILITIES_WITH_BULK = ("electricity", "water", "hot_water")
PERCENT = Decimal("0.01")


@dataclass
class LossFigures:
    """One day's or month's bulk against units, as the page and exports show it."""

    label: str
    utility: str
    bulk: Decimal
    units: Decimal
    complete: bool
    missing_meters: int
    loss_percent: Decimal | None
    threshold: Decimal
    over_threshold: bool

    @property
    def variance(self) -> Decimal:
        return self.bulk - self.units


def local_day_start(day: date, tz) -> datetime:
    """The UTC instant a local day starts (the day roll-ups' period_start)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def compute_days(session: Session, estate: Estate, first: date, last: date, *,
                 now: datetime | None = None, in_sql: bool | None = None) -> list[LossDay]:
    """Store the loss of each local day first..last for every utility with a bulk meter; the caller commits.

    On PostgreSQL the days' sums are computed in SQL (`loss_figures`); elsewhere, or with in_sql=False,
    from the roll-up rows in Python, the same way."""
    tz = estate.tz
    threshold = loss_threshold(session, estate.id)
    start, end = local_day_start(first, tz), local_day_start(last + timedelta(days=1), tz)
    meters = session.execute(
        select(Meter.id, Meter.utility, Meter.role, Meter.created_at, Meter.detached_at)
        .where(Meter.estate_id == estate.id, Meter.role.in_(("unit", "bulk")),
               Meter.utility.in_(UTILITIES_WITH_BULK),
               or_(Meter.detached_at.is_(None), Meter.detached_at > start))).all()
    by_utility: dict[str, list] = defaultdict(list)
    for meter in meters:
        by_utility[meter.utility].append(meter)
    supplied = {u for u, ms in by_utility.items() if any(m.role == "bulk" for m in ms)}
    if not supplied:
        return []
    ids = [m.id for m in meters if m.utility in supplied]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    if in_sql is None:
        in_sql = session.get_bind().dialect.name == "postgresql"
    if in_sql:
        found = loss_figures(session, ids, days, tz)
    else:  # the roll-up rows summed here, the same way
        rollups: dict[tuple[int, datetime], tuple[Decimal, int]] = {}
        for meter_id, period_start, consumption, readings in rollup_rows(session, "day", ids, start, end, tz):
            rollups[(meter_id, _utc(period_start))] = (Decimal(consumption), readings)
        found = {}
        for day in days:
            day_start, day_end = local_day_start(day, tz), local_day_start(day + timedelta(days=1), tz)
            for utility in supplied:
                figures = _day_figures(by_utility[utility], rollups, day_start, day_end)
                if figures is not None:
                    found[(day, utility)] = figures
    existing = {(row.utility, row.day): row for row in session.scalars(
        select(LossDay).where(LossDay.estate_id == estate.id, LossDay.day >= first, LossDay.day <= last))}
    stored = []
    for day in days:
        for utility in sorted(supplied):
            figures = found.get((day, utility))
            if figures is None:
                continue
            bulk, units, missing = figures
            row = existing.get((utility, day))
            if row is None:
                row = LossDay(estate_id=estate.id, utility=utility, day=day)
                session.add(row)
            row.bulk, row.units, row.missing_meters = bulk, units, missing
            row.complete = missing == 0
            row.loss_percent = loss_percent(bulk, units) if row.complete else None
            row.threshold = threshold
            row.over_threshold = row.loss_percent is not None and row.loss_percent > threshold
            row.computed_at = now or utcnow()
            stored.append(row)
    session.flush()
    return stored


# The relation the daily jobs read consumption from: (meter_id, period_start, consumption, readings) of
# one grain's roll-ups of the meters {ids} (an array) in [:<start>, :<end>). bench/analytics.py swaps it
# for the same rows summed from raw readings, its baseline.
ROLLUP_SOURCE = ("SELECT meter_id, period_start, consumption, readings FROM consumption_rollups"
                 " WHERE grain = '{grain}' AND meter_id = ANY({ids}) AND period_start >= :{start}"
                 " AND period_start < :{end}")

# Per local day and utility: the bulk and unit meters' use, and how many meters live that day (installed
# before its end, not replaced before its start) sent no readings. A day no meter was live has no row.
_LOSS_FIGURES = """
WITH d AS (
  SELECT * FROM unnest(CAST(:days AS date[]), CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
  AS d(day, day_start, day_end)),
m AS (SELECT id, utility, role, created_at, detached_at FROM meters WHERE id = ANY(:ids)),
r AS ({rows})
SELECT d.day, m.utility,
       coalesce(sum(r.consumption) FILTER (WHERE m.role = 'bulk'), 0) AS bulk,
       coalesce(sum(r.consumption) FILTER (WHERE m.role <> 'bulk'), 0) AS units,
       count(*) FILTER (WHERE coalesce(r.readings, 0) = 0) AS missing
FROM d JOIN m ON m.created_at < d.day_end AND (m.detached_at IS NULL OR m.detached_at > d.day_start)
LEFT JOIN r ON r.meter_id = m.id AND r.period_start = d.day_start
GROUP BY d.day, m.utility
"""


def loss_figures(session: Session, meter_ids: list[int], days: list[date], tz) -> dict[tuple[date, str], tuple]:
    """(local day, utility) -> (bulk, units, meters without readings), summed in PostgreSQL from the
    day roll-ups (a few rows back, not one per meter and day)."""
    starts = [local_day_start(day, tz) for day in days]
    ends = [local_day_start(day + timedelta(days=1), tz) for day in days]
    statement = _LOSS_FIGURES.format(rows=ROLLUP_SOURCE.format(grain="day", ids=":ids", start="start", end="end"))
    rows = session.execute(text(statement), {"days": days, "starts": starts, "ends": ends, "ids": list(meter_ids),
                                             "start": starts[0], "end": ends[-1], "zone": getattr(tz, "key", "UTC")})
    return {(day, utility): (Decimal(bulk), Decimal(units), int(missing)) for day, utility, bulk, units, missing in rows}


_ROLLUP_ROWS = text(
    "SELECT meter_id, period_start, consumption, readings FROM consumption_rollups"
    " WHERE grain = :grain AND meter_id = ANY(:ids) AND period_start >= :start AND period_start < :end"
    " ORDER BY meter_id, period_start")


def rollup_rows(session: Session, grain: str, meter_ids: list[int], start: datetime, end: datetime, tz=None):
    """(meter id, period start, consumption, readings) of the meters' roll-ups of a grain in [start, end).

    On PostgreSQL a plain statement: the daily jobs read tens of thousands of these rows, and the
    driver's own values (aware datetimes, Decimals) need none of the ORM's per-row processing."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(_ROLLUP_ROWS, {"grain": grain, "ids": list(meter_ids), "start": start,
                                              "end": end}).all()
    return session.execute(
        select(ConsumptionRollup.meter_id, ConsumptionRollup.period_start, ConsumptionRollup.consumption,
               ConsumptionRollup.readings)
        .where(ConsumptionRollup.grain == grain, ConsumptionRollup.meter_id.in_(meter_ids),
               ConsumptionRollup.period_start >= start, ConsumptionRollup.period_start < end)
        .order_by(ConsumptionRollup.meter_id, ConsumptionRollup.period_start)).all()


def _day_figures(meters, rollups, day_start: datetime, day_end: datetime):
    """(bulk, units, meters without readings) for one day, None when no meter was live."""
    bulk = units = Decimal(0)
    missing = 0
    live = 0
    for meter in meters:
        if _utc(meter.created_at) >= day_end or (meter.detached_at and _utc(meter.detached_at) <= day_start):
            continue  # not installed yet, or already replaced, that day
        live += 1
        consumption, readings = rollups.get((meter.id, day_start), (Decimal(0), 0))
        if readings == 0:
            missing += 1
        if meter.role == "bulk":
            bulk += consumption
        else:
            units += consumption
    if live == 0 or not any(m.role == "bulk" for m in meters):
        return None
    return bulk, units, missing


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def loss_percent(bulk: Decimal, units: Decimal) -> Decimal | None:
    """The share of the bulk meter's quantity no unit meter accounts for (None without bulk)."""
    if bulk <= 0:
        return None
    return ((bulk - units) * 100 / bulk).quantize(PERCENT)


def alert_new_episodes(session: Session, estate: Estate, rows: list[LossDay]) -> int:
    """Alert utility users and staff on the first over-threshold day of each episode; the caller commits."""
    from app.notify import notify

    sent = 0
    for row in sorted(rows, key=lambda r: (r.utility, r.day)):
        if not row.over_threshold or row.alerted:
            continue
        previous = session.scalar(
            select(LossDay).where(LossDay.estate_id == estate.id, LossDay.utility == row.utility,
                                  LossDay.day < row.day, LossDay.complete.is_(True))
            .order_by(LossDay.day.desc()).limit(1))
        row.alerted = True
        if previous is not None and previous.over_threshold:
            continue  # the same episode goes on: alerted on its first day
        for user in recipients(session, estate.id):
            notify(session, "utility_loss", {"estate": estate, "row": row}, user=user)
        sent += 1
    return sent


def recipients(session: Session, estate_id: int) -> list[User]:
    """The estate's utility users and every staff user, each once."""
    return list(session.scalars(
        select(User).join(RoleGrant, RoleGrant.user_id == User.id)
        .where(or_(and_(RoleGrant.role == "utility", RoleGrant.estate_id == estate_id),
                   RoleGrant.role == "staff"))
        .distinct().order_by(User.id)))


def run_losses(session: Session, estate: Estate, *, now: datetime | None = None,
               days: int = RECOMPUTE_DAYS) -> tuple[int, int]:
    """Recompute the estate's last `days` complete local days and alert new episodes; commits once."""
    today = (now or utcnow()).astimezone(estate.tz).date()
    rows = compute_days(session, estate, today - timedelta(days=days), today - timedelta(days=1), now=now)
    sent = alert_new_episodes(session, estate, rows)
    session.commit()
    return len(rows), sent


def daily_series(session: Session, estate_id: int, utility: str, first: date, last: date) -> list[LossFigures]:
    """The stored days first..last of one utility, oldest first."""
    rows = session.scalars(select(LossDay).where(
        LossDay.estate_id == estate_id, LossDay.utility == utility, LossDay.day >= first, LossDay.day <= last)
        .order_by(LossDay.day))
    return [LossFigures(row.day.isoformat(), row.utility, Decimal(row.bulk), Decimal(row.units), row.complete,
                        row.missing_meters, row.loss_percent, Decimal(row.threshold), row.over_threshold)
            for row in rows]


def monthly_series(session: Session, estate_id: int, utility: str, first: date, last: date,
                   threshold: Decimal) -> list[LossFigures]:
    """Stored days summed per local month: a month's loss % counts its complete days only."""
    months: dict[str, list] = {}
    for row in daily_series(session, estate_id, utility, first, last):
        months.setdefault(row.label[:7], []).append(row)
    out = []
    for label, rows in months.items():
        complete = [r for r in rows if r.complete]
        bulk = sum((r.bulk for r in complete), Decimal(0))
        units = sum((r.units for r in complete), Decimal(0))
        percent = loss_percent(bulk, units) if complete else None
        out.append(LossFigures(label, utility, bulk, units, len(complete) == len(rows),
                               len(rows) - len(complete), percent, threshold,
                               percent is not None and percent > threshold))
    return out


def estate_utilities(session: Session, estate_id: int) -> list[str]:
    """The utilities of the estate that have a bulk meter, in a stable order."""
    found = set(session.scalars(select(Meter.utility).where(
        Meter.estate_id == estate_id, Meter.role == "bulk", Meter.utility.in_(UTILITIES_WITH_BULK))))
    return [u for u in UTILITIES_WITH_BULK if u in found]
