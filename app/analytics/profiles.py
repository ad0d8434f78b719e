"""Consumption profiles (U5): each unit's use over the last days, light / moderate / heavy by the
estate's tertiles, its peak hour and its weekday against its weekend use; and the estate's demand
curve by local hour of day from the unit meters' hourly roll-ups.

Read from roll-ups only (never raw readings), in two grouped queries, so the page stays fast
at hundreds of units:
- totals, weekday and weekend use per meter from the day roll-ups of the window's local days;
- the peak hour per meter from the hour roll-ups grouped by UTC hour of day, shifted to the
  estate's local hour by its UTC offset at the end of the window (in a zone that changes its
  clocks inside the window, hours on the other side of the change count one hour off); the
  estate's curve is the same sums added up over the units.

Tertiles: the units with use are ranked by their total; a unit is light when fewer than a third
of them use less than it, heavy when at least two thirds do, moderate between. Units with the same
total always get the same band. A unit with no use in the window has no band ("No use").
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.models import ConsumptionRollup, Estate, Meter, Unit, utcnow

BANDS = ("light", "moderate", "heavy")
BAND_LABELS = {"light": "Light", "moderate": "Moderate", "heavy": "Heavy", None: "No use"}
WEEKEND = (5, 6)  # Saturday, Sunday
TWO = Decimal("0.01")


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


def _utc_hour(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("hour", func.timezone("UTC", column))
    return func.extract("hour", column)


def estate_profiles(session: Session, estate: Estate, *, utility: str = "electricity", days: int = 30,
                    now: datetime | None = None) -> ProfileReport:
    """Every unit's profile and the estate's curve over the last `days` complete local days."""
    first, last, start, end = window(estate, days, now)
    day_list = [first + timedelta(days=i) for i in range(days)]
    weekend_starts = [datetime(d.year, d.month, d.day, tzinfo=estate.tz).astimezone(UTC)
                      for d in day_list if d.weekday() in WEEKEND]
    weekend_days = len(weekend_starts)
    weekdays = days - weekend_days
    meters = dict(session.execute(select(Meter.id, Meter.unit_id).where(
        Meter.estate_id == estate.id, Meter.role == "unit", Meter.utility == utility,
        Meter.unit_id.is_not(None))).all())
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)).all())
    rollup = ConsumptionRollup
    in_window = (rollup.meter_id.in_(list(meters) or [-1]), rollup.period_start >= start, rollup.period_start < end)

    weekend = case((rollup.period_start.in_(weekend_starts or [datetime(1970, 1, 1, tzinfo=UTC)]),
                    rollup.consumption), else_=0)
    totals: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])  # unit -> [all, weekend]
    for meter_id, total, at_weekend in session.execute(
            select(rollup.meter_id, func.sum(rollup.consumption), func.sum(weekend))
            .where(rollup.grain == "day", *in_window).group_by(rollup.meter_id)):
        row = totals[meters[meter_id]]
        row[0] += Decimal(total or 0)
        row[1] += Decimal(at_weekend or 0)

    offset_hours = int(end.astimezone(estate.tz).utcoffset().total_seconds() // 3600)
    by_hour: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    hour = _utc_hour(session, rollup.period_start)
    for meter_id, utc_hour, total in session.execute(
            select(rollup.meter_id, hour, func.sum(rollup.consumption))
            .where(rollup.grain == "hour", *in_window).group_by(rollup.meter_id, hour)):
        by_hour[meters[meter_id]][(int(utc_hour) + offset_hours) % 24] += Decimal(total or 0)

    curve_totals = defaultdict(Decimal)  # the same hour-of-day sums, all units together
    for hours in by_hour.values():
        for local_hour, total in hours.items():
            curve_totals[local_hour] += total
    curve = [(h, (curve_totals[h] / days).quantize(TWO)) for h in range(24)]

    units = []
    for unit_id in sorted(set(meters.values()), key=lambda u: numbers.get(u, "")):
        total, at_weekend = totals.get(unit_id, (Decimal(0), Decimal(0)))
        hours = by_hour.get(unit_id, {})
        peak = max(sorted(hours), key=lambda h: hours[h]) if hours and max(hours.values()) > 0 else None
        units.append(UnitProfile(
            unit_id, numbers.get(unit_id, ""), total.quantize(TWO),
            ((total - at_weekend) / weekdays).quantize(TWO) if weekdays else Decimal(0),
            (at_weekend / weekend_days).quantize(TWO) if weekend_days else Decimal(0), peak))
    bands = assign_bands({u.unit_id: u.total for u in units})
    for profile in units:
        profile.band = bands.get(profile.unit_id)
    return ProfileReport(estate.id, utility, first, last, weekdays, weekend_days, units, curve, _cuts(units))


def _cuts(units: list[UnitProfile]) -> tuple[Decimal, Decimal] | None:
    moderate = [u.total for u in units if u.band == "moderate"]
    heavy = [u.total for u in units if u.band == "heavy"]
    if not moderate and not heavy:
        return None
    return (min(moderate) if moderate else None, min(heavy) if heavy else None)

