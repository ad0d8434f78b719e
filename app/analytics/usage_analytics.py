"""Owner usage analytics (O3): consumption per unit, top consumers and solar generation vs use.

Everything comes from the roll-ups (M5): monthly roll-ups for the per-unit table, daily
roll-ups for the month's curve. Months are local to each unit's estate, so a month is
the same calendar month in Johannesburg and in Dakar, whatever its UTC instants.
- use: the unit-role meters of the chosen utility on the units;
- solar: the solar-role meters on the units (energy generated on site and delivered to
  them), compared with the units' electricity use from the grid (unit-role electricity
  meters); the solar share is solar / (solar + grid electricity).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.models import ConsumptionRollup, Estate, Meter, Unit
from app.models.meter import UTILITIES
from app.money import UTILITY_UNITS
from app.periods import add_months, local_month_bounds, shift_month

TOP_CONSUMERS = 5


@dataclass
class UnitUsage:
    unit_id: int
    number: str
    estate_name: str
    status: str
    used: Decimal
    previous: Decimal | None  # the month before, None when no meter reported then

    @property
    def change_percent(self) -> Decimal | None:
        if not self.previous:
            return None
        return (100 * (self.used - self.previous) / self.previous).quantize(Decimal("1"))


@dataclass
class DayUsage:
    day: date
    used: Decimal      # the chosen utility
    solar: Decimal     # solar generated
    grid: Decimal      # electricity from the grid


@dataclass
class UsageReport:
    utility: str
    unit: str          # KWH or KL
    year: int
    month: int
    units: list[UnitUsage] = field(default_factory=list)
    days: list[DayUsage] = field(default_factory=list)
    has_solar: bool = False

    @property
    def label(self) -> str:
        from app.i18n.formatting import local_date  # the reader's language (English unchanged)
        return local_date(date(self.year, self.month, 1), "%B %Y")

    @property
    def total(self) -> Decimal:
        return sum((u.used for u in self.units), Decimal(0))

    @property
    def top(self) -> list[UnitUsage]:
        """The biggest consumers, biggest first (ties by estate and unit number)."""
        ranked = sorted((u for u in self.units if u.used > 0), key=lambda u: (-u.used, u.estate_name, u.number))
        return ranked[:TOP_CONSUMERS]

    @property
    def solar_total(self) -> Decimal:
        return sum((d.solar for d in self.days), Decimal(0))

    @property
    def grid_total(self) -> Decimal:
        return sum((d.grid for d in self.days), Decimal(0))

    @property
    def solar_share_percent(self) -> Decimal | None:
        """Solar as a share of all electricity the units used (solar + grid)."""
        whole = self.solar_total + self.grid_total
        if not whole:
            return None
        return (100 * self.solar_total / whole).quantize(Decimal("0.1"))

    def share_of_total(self, row: UnitUsage) -> Decimal | None:
        """The unit's share of all the units' use, in percent."""
        total = self.total
        return (100 * row.used / total).quantize(Decimal("0.1")) if total else None


def utilities_metered(session: Session, unit_ids: Select) -> list[str]:
    """The utilities the units have unit meters for, in the usual order."""
    found = set(session.scalars(select(Meter.utility).distinct().where(
        Meter.unit_id.in_(unit_ids), Meter.role == "unit")))
    return [u for u in UTILITIES if u in found]


def usage_report(session: Session, unit_ids: Select, utility: str, year: int, month: int) -> UsageReport:
    """Per-unit use of `utility` in a local month, with the month's daily curve and solar vs grid."""
    report = UsageReport(utility, UTILITY_UNITS.get(utility, ""), year, month)
    units = session.execute(select(Unit.id, Unit.number, Unit.occupancy_status, Estate.name, Estate.timezone)
                            .join(Estate, Estate.id == Unit.estate_id).where(Unit.id.in_(unit_ids))
                            .order_by(Estate.name, Unit.number)).all()
    if not units:
        return report
    timezones = sorted({row.timezone for row in units})
    previous_month = shift_month(year, month, -1)
    this = {tz: local_month_bounds(year, month, tz) for tz in timezones}
    before = {tz: local_month_bounds(*previous_month, tz) for tz in timezones}

    # Per unit: this month's and last month's monthly roll-ups of the utility's unit meters.
    monthly = session.execute(
        select(Meter.unit_id, ConsumptionRollup.period_start, func.sum(ConsumptionRollup.consumption))
        .join(ConsumptionRollup, ConsumptionRollup.meter_id == Meter.id)
        .join(Estate, Estate.id == Meter.estate_id)
        .where(Meter.unit_id.in_(unit_ids), Meter.role == "unit", Meter.utility == utility,
               ConsumptionRollup.grain == "month",
               or_(*[and_(Estate.timezone == tz, ConsumptionRollup.period_start.in_((this[tz][0], before[tz][0])))
                     for tz in timezones]))
        .group_by(Meter.unit_id, ConsumptionRollup.period_start))
    used: dict[int, Decimal] = defaultdict(Decimal)
    previous: dict[int, Decimal] = {}
    tz_of = {row.id: row.timezone for row in units}
    for unit_id, start, total in monthly:
        if start.astimezone(UTC) == this[tz_of[unit_id]][0]:
            used[unit_id] += Decimal(total)
        else:
            previous[unit_id] = previous.get(unit_id, Decimal(0)) + Decimal(total)
    report.units = [UnitUsage(row.id, row.number, row.name, row.occupancy_status, used.get(row.id, Decimal(0)),
                              previous.get(row.id)) for row in units]

    # The month's days: the utility's use, solar generated and grid electricity, summed over units.
    daily = session.execute(
        select(ConsumptionRollup.period_start, Estate.timezone, Meter.utility, Meter.role,
               func.sum(ConsumptionRollup.consumption))
        .join(Meter, Meter.id == ConsumptionRollup.meter_id)
        .join(Estate, Estate.id == Meter.estate_id)
        .where(Meter.unit_id.in_(unit_ids), ConsumptionRollup.grain == "day",
               or_(Meter.role == "solar",
                   and_(Meter.role == "unit", Meter.utility.in_({utility, "electricity"}))),
               or_(*[and_(Estate.timezone == tz, ConsumptionRollup.period_start >= this[tz][0],
                          ConsumptionRollup.period_start < this[tz][1]) for tz in timezones]))
        .group_by(ConsumptionRollup.period_start, Estate.timezone, Meter.utility, Meter.role))
    first = date(year, month, 1)
    length = (add_months(first, 1) - first).days
    days = {first + timedelta(days=i): DayUsage(first + timedelta(days=i), Decimal(0), Decimal(0), Decimal(0))
            for i in range(length)}
    for start, timezone, meter_utility, role, total in daily:
        day = days.get(start.astimezone(ZoneInfo(timezone)).date())
        if day is None:
            continue
        total = Decimal(total)
        if role == "solar":
            day.solar += total
        else:
            if meter_utility == utility:
                day.used += total
            if meter_utility == "electricity":
                day.grid += total
    report.days = list(days.values())
    report.has_solar = session.scalar(select(Meter.id).where(
        Meter.unit_id.in_(unit_ids), Meter.role == "solar").limit(1)) is not None
    return report
