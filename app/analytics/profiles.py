"""Consumption profiles (U5): each unit's use over the last days, light / moderate / heavy by the
estate's tertiles, its peak hour and its weekday against its weekend use; and the estate's demand
curve by local hour of day from the unit meters' hourly roll-ups.

Read from the hour roll-ups only (never raw readings), each hour at its local hour of day and
local day type in the estate's zone (PostgreSQL's AT TIME ZONE per row, zoneinfo on SQLite), so
hours after a clock change count where they belong. The totals, weekday and weekend use and the
peak hour per meter come from the same sums; the estate's curve is them added up over the units.

The page reads stored figures: the daily `utility_profiles` job (`store_profiles`) writes each
unit meter's use per local hour and day type for the 7, 30 and 90 day windows (`MeterProfile`,
`ProfileRun`); `stored_profiles` builds the report from them (hundreds of small rows, not a
year of hours) and equals `estate_profiles`, the live computation, on the same roll-ups.

Tertiles: the units with use are ranked by their total; a unit is light when fewer than a third
of them use less than it, heavy when at least two thirds do, moderate between. Units with the same
total always get the same band. A unit with no use in the window has no band ("No use").
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, delete, func, insert, select, text
from sqlalchemy.orm import Session

from app.models import ConsumptionRollup, Estate, Meter, Unit, utcnow

BANDS = ("light", "moderate", "heavy")
BAND_LABELS = {"light": "Light", "moderate": "Moderate", "heavy": "Heavy", None: "No use"}
WEEKEND = (5, 6)  # Saturday, Sunday
TWO = Decimal("0.01")
UTILITIES = ("electricity", "water", "hot_water")
DAY_CHOICES = (7, 30, 90)  # the windows the page offers and the job stores


@dataclass
class UnitProfile:
    unit_id: int
    unit_number: str
    total: Decimal
    weekday_per_day: Decimal
    weekend_per_day: Decimal
    peak_hour: int | None  # local hour of day with the most use, None without use
    band: str | None = None

    @property
    def band_label(self) -> str:
        return BAND_LABELS[self.band]

    @property
    def weekend_ratio(self) -> Decimal | None:
        """Weekend use per day as a % of weekday use per day."""
        if not self.weekday_per_day:
            return None
        return (self.weekend_per_day * 100 / self.weekday_per_day).quantize(Decimal("0.1"))


@dataclass
class ProfileReport:
    estate_id: int
    utility: str
    first: date  # first local day of the window
    last: date  # last local day of the window (inclusive)
    weekdays: int
    weekend_days: int
    units: list[UnitProfile]
    curve: list[tuple[int, Decimal]]  # (local hour, average use in that hour per day, all units together)
    cuts: tuple[Decimal, Decimal] | None  # totals where moderate and heavy begin
    computed_at: datetime | None = None  # when the stored figures were computed (None: live)

    def count(self, band: str | None) -> int:
        return sum(1 for u in self.units if u.band == band)


def assign_bands(totals: dict[int, Decimal]) -> dict[int, str]:
    """Light / moderate / heavy by tertiles of the totals (only units with use > 0 are banded)."""
    used = sorted(v for v in totals.values() if v > 0)
    n = len(used)
    bands = {}
    for key, value in totals.items():
        if value <= 0:
            continue
        below = _count_below(used, value)
        bands[key] = BANDS[min(2, (3 * below) // n)]
    return bands


def _count_below(ordered: list[Decimal], value: Decimal) -> int:
    from bisect import bisect_left
    return bisect_left(ordered, value)


def window(estate: Estate, days: int, now: datetime | None = None) -> tuple[date, date, datetime, datetime]:
    """The last `days` complete local days: (first day, last day, start as UTC, end as UTC)."""
    today = (now or utcnow()).astimezone(estate.tz).date()
    first, last = today - timedelta(days=days), today - timedelta(days=1)
    start = datetime(first.year, first.month, first.day, tzinfo=estate.tz).astimezone(UTC)
    end = datetime(today.year, today.month, today.day, tzinfo=estate.tz).astimezone(UTC)
    return first, last, start, end


def _weekend(local_day: date) -> bool:
    return local_day.weekday() in WEEKEND


_LOCAL_HOURS = text(
    "SELECT meter_id, CAST(extract(hour FROM period_start AT TIME ZONE :zone) AS integer) AS local_hour,"
    " extract(isodow FROM period_start AT TIME ZONE :zone) IN (6, 7) AS weekend,"
    " CASE WHEN period_start >= :start_7 THEN 7 WHEN period_start >= :start_30 THEN 30 ELSE 90 END AS span,"
    " sum(consumption) FROM consumption_rollups"
    " WHERE grain = 'hour' AND meter_id = ANY(:ids) AND period_start >= :start AND period_start < :end"
    " GROUP BY 1, 2, 3, 4")


def hour_sums(session: Session, estate: Estate, meter_ids: list[int], end: datetime,
              windows: tuple[int, ...]) -> dict[int, dict[tuple[int, int, bool], Decimal]]:
    """Each window (days back from `end`, the start of today) -> {(meter, local hour, weekend): use}.

    The hour roll-ups' starts are read in the estate's zone row by row (PostgreSQL's AT TIME ZONE,
    zoneinfo on SQLite), so an hour after a clock change counts at its own local hour."""
    tz = estate.tz
    today = end.astimezone(tz).date()
    starts = {w: datetime.combine(today - timedelta(days=w), datetime.min.time(), tz).astimezone(UTC)
              for w in windows}
    out: dict[int, dict] = {w: defaultdict(Decimal) for w in windows}
    if not meter_ids:
        return out
    spans = sorted(windows)
    if session.get_bind().dialect.name == "postgresql" and set(spans) <= set(DAY_CHOICES):
        rows = session.execute(_LOCAL_HOURS, {
            "zone": tz.key, "ids": meter_ids, "start": starts[spans[-1]], "end": end,
            "start_7": starts.get(7, end), "start_30": starts.get(30, starts.get(7, end))})
        for meter_id, local_hour, weekend, span, total in rows:
            for w in spans:
                if w >= span:
                    out[w][(meter_id, int(local_hour), bool(weekend))] += Decimal(total or 0)
        return out
    rollup = ConsumptionRollup
    for meter_id, period_start, consumption in session.execute(
            select(rollup.meter_id, rollup.period_start, rollup.consumption)
            .where(rollup.grain == "hour", rollup.meter_id.in_(meter_ids), rollup.period_start >= starts[spans[-1]],
                   rollup.period_start < end)):
        at = period_start.replace(tzinfo=UTC) if period_start.tzinfo is None else period_start
        local = at.astimezone(tz)
        key = (meter_id, local.hour, _weekend(local.date()))
        for w in spans:
            if at >= starts[w]:
                out[w][key] += Decimal(consumption or 0)
    return out


def _unit_meters(session: Session, estate: Estate, utility: str) -> dict[int, int]:
    return dict(session.execute(select(Meter.id, Meter.unit_id).where(
        Meter.estate_id == estate.id, Meter.role == "unit", Meter.utility == utility,
        Meter.unit_id.is_not(None))).all())


def estate_profiles(session: Session, estate: Estate, *, utility: str = "electricity", days: int = 30,
                    now: datetime | None = None) -> ProfileReport:
    """Every unit's profile and the estate's curve over the last `days` complete local days, live
    from the hour roll-ups (the stored figures of `store_profiles` must equal this)."""
    first, last, _start, end = window(estate, days, now)
    meters = _unit_meters(session, estate, utility)
    sums = hour_sums(session, estate, list(meters), end, (days,))[days]
    totals, peaks, curve = _aggregate(sums, meters)
    return build_report(session, estate, utility, first, last, meters, totals, peaks, curve)


def _aggregate(sums: dict[tuple[int, int, bool], Decimal], meters: dict[int, int]):
    """Per unit [use, weekend use] and peak hour, and the estate's use per local hour, from the sums."""
    by_hour: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))  # unit -> hour -> use
    totals: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])  # unit -> [all, weekend]
    curve: dict[int, Decimal] = defaultdict(Decimal)
    for (meter_id, local_hour, weekend), total in sums.items():
        unit_id = meters[meter_id]
        by_hour[unit_id][local_hour] += total
        totals[unit_id][0] += total
        if weekend:
            totals[unit_id][1] += total
        curve[local_hour] += total
    peaks = {unit_id: _peak(hours) for unit_id, hours in by_hour.items()}
    return dict(totals), peaks, dict(curve)


def _peak(hours: dict[int, Decimal]) -> int | None:
    """The hour with the most use (the earliest of equals); None without use."""
    return max(sorted(hours), key=lambda h: hours[h]) if hours and max(hours.values()) > 0 else None


def build_report(session: Session, estate: Estate, utility: str, first: date, last: date, meters: dict[int, int],
                 totals: dict[int, list[Decimal]], peaks: dict[int, int | None], curve_totals: dict[int, Decimal],
                 computed_at: datetime | None = None) -> ProfileReport:
    """The report from each unit's [use, weekend use], its peak hour and the estate's use per local hour."""
    days = (last - first).days + 1
    weekend_days = sum(1 for i in range(days) if _weekend(first + timedelta(days=i)))
    weekdays = days - weekend_days
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)).all())
    curve = [(h, (curve_totals.get(h, Decimal(0)) / days).quantize(TWO)) for h in range(24)]
    units = []
    for unit_id in sorted(set(meters.values()), key=lambda u: numbers.get(u, "")):
        total, at_weekend = totals.get(unit_id, (Decimal(0), Decimal(0)))
        units.append(UnitProfile(
            unit_id, numbers.get(unit_id, ""), total.quantize(TWO),
            ((total - at_weekend) / weekdays).quantize(TWO) if weekdays else Decimal(0),
            (at_weekend / weekend_days).quantize(TWO) if weekend_days else Decimal(0), peaks.get(unit_id)))
    bands = assign_bands({u.unit_id: u.total for u in units})
    for profile in units:
        profile.band = bands.get(profile.unit_id)
    return ProfileReport(estate.id, utility, first, last, weekdays, weekend_days, units, curve, _cuts(units),
                         computed_at)


# --- stored profiles (the daily utility_profiles job) ------------------------------------------


def store_profiles(session: Session, estate: Estate, *, utilities: tuple[str, ...] = UTILITIES,
                   now: datetime | None = None) -> int:
    """Store every window's profile of each utility's unit meters; returns the rows written. The
    caller commits. One grouped read of the hour roll-ups per utility covers the three windows."""
    from app.models.utility_figures import MeterProfile, ProfileRun

    now = now or utcnow()
    written = 0
    for utility in utilities:
        meters = _unit_meters(session, estate, utility)
        _first, _last, _start, end = window(estate, 1, now)
        sums = hour_sums(session, estate, list(meters), end, DAY_CHOICES)
        runs = {run.window_days: run for run in session.scalars(select(ProfileRun).where(
            ProfileRun.estate_id == estate.id, ProfileRun.utility == utility))}
        for days in DAY_CHOICES:
            first, last, _s, _e = window(estate, days, now)
            weekend_days = sum(1 for i in range(days) if _weekend(first + timedelta(days=i)))
            figures = {"first_day": first, "last_day": last, "weekdays": days - weekend_days,
                       "weekend_days": weekend_days, "computed_at": now}
            run = runs.get(days)
            if run is None:
                run = ProfileRun(estate_id=estate.id, utility=utility, window_days=days, **figures)
                session.add(run)
                session.flush()
            else:
                session.execute(delete(MeterProfile).where(MeterProfile.run_id == run.id))
                for name, value in figures.items():
                    setattr(run, name, value)
            totals, peaks, curve = _aggregate(sums[days], meters)
            run.summary = {"units": {str(u): [str(t), str(w), peaks.get(u)] for u, (t, w) in totals.items()},
                           "curve": [str(curve.get(h, Decimal(0))) for h in range(24)]}
            rows = [{"run_id": run.id, "meter_id": m, "local_hour": h, "weekend": w, "energy": total}
                    for (m, h, w), total in sums[days].items() if total != 0]
            if rows:
                session.execute(insert(MeterProfile), rows)
            written += len(rows)
    session.flush()
    return written


def stored_profiles(session: Session, estate: Estate, *, utility: str = "electricity", days: int = 30,
                    now: datetime | None = None) -> ProfileReport:
    """The report from the stored profile of the window; when the job has not stored today's window
    yet (a new estate, or before the night's run), it is computed once from the roll-ups and stored."""
    from app.models.utility_figures import MeterProfile, ProfileRun

    first, last, _start, _end = window(estate, days, now)
    run = session.scalar(select(ProfileRun).where(
        ProfileRun.estate_id == estate.id, ProfileRun.utility == utility, ProfileRun.window_days == days))
    if run is None or run.last_day != last:
        store_profiles(session, estate, utilities=(utility,), now=now)
        session.commit()
        run = session.scalar(select(ProfileRun).where(
            ProfileRun.estate_id == estate.id, ProfileRun.utility == utility, ProfileRun.window_days == days))
    meters = _unit_meters(session, estate, utility)
    if run.summary is not None:  # the page's summary, stored with the rows: one small read
        units = {int(u): values for u, values in run.summary["units"].items()}
        return build_report(
            session, estate, utility, run.first_day, run.last_day, meters,
            {u: [Decimal(t), Decimal(w)] for u, (t, w, _p) in units.items()},
            {u: p for u, (_t, _w, p) in units.items()},
            {h: Decimal(v) for h, v in enumerate(run.summary["curve"])}, run.computed_at)
    profile = MeterProfile
    mine = (profile.run_id == run.id, Meter.id == profile.meter_id, Meter.id.in_(list(meters) or [-1]))
    # Three small grouped reads: each unit's use and weekend use, its use per hour, the estate's curve.
    totals: dict[int, list[Decimal]] = {
        unit_id: [Decimal(total), Decimal(at_weekend or 0)] for unit_id, total, at_weekend in session.execute(
            select(Meter.unit_id, func.sum(profile.energy),
                   func.sum(case((profile.weekend.is_(True), profile.energy), else_=0)))
            .where(*mine).group_by(Meter.unit_id))}
    per_hour = (select(Meter.unit_id.label("unit_id"), profile.local_hour.label("local_hour"),
                       func.sum(profile.energy).label("used"))
                .where(*mine).group_by(Meter.unit_id, profile.local_hour))
    peaks: dict[int, int | None] = {}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import distinct_on

        hours = per_hour.subquery()
        for unit_id, local_hour, used in session.execute(
                select(hours.c.unit_id, hours.c.local_hour, hours.c.used).ext(distinct_on(hours.c.unit_id))
                .order_by(hours.c.unit_id, hours.c.used.desc(), hours.c.local_hour)):
            peaks[unit_id] = local_hour if used > 0 else None
    else:
        by_hour: dict[int, dict[int, Decimal]] = defaultdict(dict)
        for unit_id, local_hour, used in session.execute(per_hour):
            by_hour[unit_id][local_hour] = Decimal(used)
        peaks = {unit_id: _peak(hours) for unit_id, hours in by_hour.items()}
    curve = {local_hour: Decimal(used) for local_hour, used in session.execute(
        select(profile.local_hour, func.sum(profile.energy)).where(*mine).group_by(profile.local_hour))}
    return build_report(session, estate, utility, run.first_day, run.last_day, meters, totals, peaks, curve,
                        run.computed_at)


def _cuts(units: list[UnitProfile]) -> tuple[Decimal, Decimal] | None:
    moderate = [u.total for u in units if u.band == "moderate"]
    heavy = [u.total for u in units if u.band == "heavy"]
    if not moderate and not heavy:
        return None
    return (min(moderate) if moderate else None, min(heavy) if heavy else None)

