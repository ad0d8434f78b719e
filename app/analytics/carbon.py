"""Carbon footprint (U5): kg CO2e per unit and estate per month, and the solar offset.

- An emission factor is kg CO2e per kWh (electricity) or per kL (water, hot water) of one utility
  in one country, in force from its `effective_from` day until the next factor of the same
  country and utility. Staff keep them (`save_factor`, audited); the factor in force on a local
  day prices that day's use, so a factor changing mid-month splits the month.
- Use is the unit meters' day roll-ups (never raw readings): one grouped query sums each meter's
  use per *segment*, a run of local days inside one month under one factor.
- Solar offset: the estate's solar meters' generation (their positive roll-ups) times the
  electricity factor of the day: grid emissions the generation displaced. Net is footprint minus
  offset.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.models import ConsumptionRollup, Estate, Meter, Unit
from app.models.utility import EmissionFactor
from app.periods import add_months, first_day, parse_period
from app.sql_arrays import one_of

CARBON_UTILITIES = ("electricity", "water", "hot_water")
KG = Decimal("0.001")
MAX_FACTOR = Decimal("100")  # kg CO2e per kWh or kL: far above any grid (coal is about 1.1)


class FactorError(ValueError):
    """The factor cannot be saved as given; `errors` is keyed by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- factors ----------------------------------------------------------------------------


def factors_of(session: Session, country: str | None = None) -> list[EmissionFactor]:
    query = select(EmissionFactor).order_by(EmissionFactor.country, EmissionFactor.utility, EmissionFactor.effective_from)
    if country:
        query = query.where(EmissionFactor.country == country)
    return list(session.scalars(query))


def factor_schedule(factors: list[EmissionFactor]) -> dict[str, list[tuple[date, Decimal]]]:
    """utility -> [(from, kg per unit)] in date order, for one country's factors."""
    found: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for factor in sorted(factors, key=lambda f: f.effective_from):
        found[factor.utility].append((factor.effective_from, Decimal(factor.kg_per_unit)))
    return found


def factor_on(schedule: list[tuple[date, Decimal]], day: date) -> Decimal | None:
    """The factor in force on a day (None before the first)."""
    index = bisect_right([d for d, _ in schedule], day) - 1
    return schedule[index][1] if index >= 0 else None


def save_factor(session: Session, form: dict, *, factor: EmissionFactor | None = None,
                user_id: int | None = None) -> EmissionFactor:
    """Add a factor (or change one's value and source), audited; commits once. FactorError lists problems."""
    errors: dict[str, str] = {}
    country = (form.get("country") or (factor.country if factor else "")).strip().upper()
    utility = (form.get("utility") or (factor.utility if factor else "")).strip()
    if factor is None:
        if len(country) != 2 or not country.isalpha():
            errors["country"] = str(_l("Write the country as its two-letter code, like ZA."))
        if utility not in CARBON_UTILITIES:
            errors["utility"] = str(_l("Choose electricity, water or hot water."))
        try:
            effective = date.fromisoformat((form.get("effective_from") or "").strip())
        except ValueError:
            effective = None
            errors["effective_from"] = str(_l("Write the first day as YYYY-MM-DD."))
    else:
        effective = factor.effective_from
    try:
        kg = Decimal((form.get("kg_per_unit") or "").strip())
        if not kg.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        kg = None
        errors["kg_per_unit"] = str(_l("Write the factor as a number, like 0.95."))
    if kg is not None and "kg_per_unit" not in errors:
        if kg < 0 or kg > MAX_FACTOR:
            errors["kg_per_unit"] = str(_l("The factor must be between 0 and 100 kg CO2e per unit."))
        elif kg != kg.quantize(Decimal("0.0001")):
            errors["kg_per_unit"] = str(_l("At most four decimals."))
    source = (form.get("source") or "").strip()
    if len(source) > 200:
        errors["source"] = str(_l("At most 200 characters."))
    if factor is None and not errors and session.scalar(select(EmissionFactor.id).where(
            EmissionFactor.country == country, EmissionFactor.utility == utility,
            EmissionFactor.effective_from == effective)) is not None:
        errors["effective_from"] = str(_l("This country and utility already have a factor from that day: change that one."))
    if errors:
        raise FactorError(errors)
    if factor is None:
        factor = EmissionFactor(country=country, utility=utility, effective_from=effective, kg_per_unit=kg, source=source)
        session.add(factor)
        session.flush()
        audit.record(session, "emission_factor.created", factor, new=_view(factor))
    else:
        old = _view(factor)
        factor.kg_per_unit, factor.source = kg, source
        session.flush()
        audit.record(session, "emission_factor.changed", factor, old=old, new=_view(factor))
    session.commit()
    return factor


def _view(factor: EmissionFactor) -> dict:
    return {"country": factor.country, "utility": factor.utility, "effective_from": factor.effective_from.isoformat(),
            "kg_per_unit": str(factor.kg_per_unit), "source": factor.source}


# --- footprint ----------------------------------------------------------------------------


@dataclass
class MonthCarbon:
    period: str
    use: dict[str, Decimal] = field(default_factory=dict)  # utility -> kWh or kL
    kg: dict[str, Decimal] = field(default_factory=dict)  # utility -> kg CO2e
    unpriced: dict[str, Decimal] = field(default_factory=dict)  # utility -> use on days without a factor
    solar_kwh: Decimal = Decimal(0)
    offset_kg: Decimal = Decimal(0)

    @property
    def total_kg(self) -> Decimal:
        return sum(self.kg.values(), Decimal(0))

    @property
    def net_kg(self) -> Decimal:
        return self.total_kg - self.offset_kg


@dataclass
class UnitCarbon:
    unit_id: int
    unit_number: str
    period: str
    kg: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total_kg(self) -> Decimal:
        return sum(self.kg.values(), Decimal(0))


@dataclass
class CarbonReport:
    estate_id: int
    country: str
    months: list[MonthCarbon]
    units: list[UnitCarbon]  # per unit and month, unit-number order then month
    factors: dict[str, list[tuple[date, Decimal]]]
    # The carbon utilities the estate has: unit meters of them, or use of them in the months shown
    # (pages and exports show a column only for these: no "Hot water" where there is none).
    utilities: tuple[str, ...] = CARBON_UTILITIES


def _segments(estate: Estate, months: list[str], schedule: dict[str, list[tuple[date, Decimal]]]):
    """Runs of local days inside one month under one set of factors: [(start day, end day, period)]."""
    cuts = set()
    for period in months:
        cuts.add(first_day(period))
    end = add_months(first_day(months[-1]), 1)
    cuts.add(end)
    for entries in schedule.values():
        for day, _ in entries:
            if first_day(months[0]) < day < end:
                cuts.add(day)
    ordered = sorted(cuts)
    return [(a, b, f"{a.year:04d}-{a.month:02d}") for a, b in zip(ordered, ordered[1:])]


def _instant(day: date, estate: Estate) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=estate.tz).astimezone(UTC)


def _segment_use(session: Session, estate: Estate, meter_ids: list[int], segments) -> Iterator[tuple[int, int, Decimal]]:
    """(meter id, segment index, use) of every segment, from the month roll-ups (one row per meter
    and month) and, for a month a factor change splits, the day roll-ups of its shorter segments
    only: its longest segment is the month less those (the roll-ups of a month equal its days'
    sum, M5), so a factor changing on the 3rd reads two days per meter, not thirty.
    The segment comes back as its index (no timestamps to convert) and the meters as one array
    parameter on PostgreSQL (`one_of`), so the statement does not grow with the estate."""
    rollup = ConsumptionRollup
    months: dict[str, list[int]] = defaultdict(list)
    for index, (_, _, period) in enumerate(segments):
        months[period].append(index)
    whole, shorter, longest_of = [], [], {}  # longest_of: a split month's longest segment -> its others
    for period, indices in months.items():
        if len(indices) > 1:
            longest = max(indices, key=lambda i: ((segments[i][1] - segments[i][0]).days, -i))
            longest_of[longest] = [i for i in indices if i != longest]
            shorter.extend(longest_of[longest])
            indices = [longest]
        whole.append((_instant(first_day(period), estate), indices[0]))
    meters = one_of(session, rollup.meter_id, meter_ids)
    segment = case(*[(rollup.period_start == a, i) for a, i in whole], else_=-1)
    # Rows are used as they come, never held in a list: thousands of rows kept alive through the
    # loop were promoted by the garbage collector and set off a full collection every few pages.
    rest: dict[tuple[int, int], Decimal] = {}  # (meter, longest segment) -> the month less its other segments
    connection = session.connection()  # Core rows: no ORM result processing for thousands of plain rows
    for meter_id, index, used in connection.execute(
            select(rollup.meter_id, segment, rollup.consumption)
            .where(rollup.grain == "month", meters, rollup.period_start.in_([a for a, _ in whole]))):
        if index in longest_of:
            rest[(meter_id, index)] = used or Decimal(0)
        else:
            yield meter_id, index, used
    if not shorter:
        return
    bounds = [(_instant(segments[i][0], estate), _instant(segments[i][1], estate), i) for i in shorter]
    segment = case(*[(and_(rollup.period_start >= a, rollup.period_start < b), i) for a, b, i in bounds],
                   else_=-1)
    longest_by_segment = {other: longest for longest, others in longest_of.items() for other in others}
    for meter_id, index, used in connection.execute(
            select(rollup.meter_id, segment, func.sum(rollup.consumption))
            .where(rollup.grain == "day", meters,
                   or_(*[and_(rollup.period_start >= a, rollup.period_start < b) for a, b, _ in bounds]))
            .group_by(rollup.meter_id, segment)):
        yield meter_id, index, used
        key = (meter_id, longest_by_segment.get(index))
        if key in rest:
            rest[key] -= used or Decimal(0)
    for (meter_id, index), used in rest.items():
        yield meter_id, index, used


def estate_carbon(session: Session, estate: Estate, months: list[str], *,
                  unit_month: str | None = None) -> CarbonReport:
    """The estate's footprint per month and utility, each unit's per month (only `unit_month`'s
    when given: a page shows one month's units), and the solar offset."""
    months = sorted(months)
    for period in months:
        parse_period(period)
    schedule = factor_schedule(factors_of(session, estate.country))
    segments = _segments(estate, months, schedule)
    unit_meters: dict[int, tuple[str, int]] = {}  # meter -> (utility, unit): plain rows, not ORM meters
    solar_meters: set[int] = set()
    for meter_id, role, utility, unit_id in session.execute(select(Meter.id, Meter.role, Meter.utility, Meter.unit_id)
                                                            .where(Meter.estate_id == estate.id,
                                                                   Meter.role.in_(("unit", "solar")))):
        if role == "solar":
            if utility in ("solar", "electricity"):
                solar_meters.add(meter_id)
        elif utility in CARBON_UTILITIES and unit_id is not None:
            unit_meters[meter_id] = (utility, unit_id)
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)).all())
    by_month = {p: MonthCarbon(p) for p in months}
    by_unit: dict[tuple[int, int], UnitCarbon] = {}
    if (unit_meters or solar_meters) and segments:
        rows = _segment_use(session, estate, [*unit_meters, *solar_meters], segments)  # an iterator
        # The factor of each utility and segment, looked up once; sums per (utility, segment), then
        # given to the months: the loop runs once per meter and segment (thousands of rows).
        price = {(u, i): factor_on(schedule.get(u, []), segments[i][0])
                 for u in CARBON_UTILITIES for i in range(len(segments))}
        shown = {i for i, (_, _, period) in enumerate(segments) if unit_month is None or period == unit_month}
        zero = Decimal(0)
        use: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        grams: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        for meter_id, index, used in rows:
            if index is None or index < 0 or used is None:
                continue
            meter = unit_meters.get(meter_id)
            if meter is None:  # a solar meter: its generation offsets at the electricity factor
                generated = used if used > zero else zero
                use[("solar", index)] += generated
                factor = price[("electricity", index)]
                if factor is not None:
                    grams[("solar", index)] += (generated * factor).quantize(KG)
                continue
            utility, unit_id = meter
            key = (utility, index)
            use[key] += used
            factor = price[key]
            if factor is None:
                continue
            kg = (used * factor).quantize(KG)
            grams[key] += kg
            if index in shown:
                row = by_unit.get((unit_id, index))
                if row is None:
                    row = by_unit[(unit_id, index)] = UnitCarbon(unit_id, numbers.get(unit_id, ""), segments[index][2])
                row.kg[utility] = row.kg.get(utility, zero) + kg
        for (utility, index), used in use.items():
            month = by_month[segments[index][2]]
            if utility == "solar":
                month.solar_kwh += used
                month.offset_kg += grams.get(("solar", index), zero)
            elif price[(utility, index)] is None:
                month.use[utility] = month.use.get(utility, zero) + used
                month.unpriced[utility] = month.unpriced.get(utility, zero) + used
            else:
                month.use[utility] = month.use.get(utility, zero) + used
                month.kg[utility] = month.kg.get(utility, zero) + grams[(utility, index)]
        # A factor change splits a month into segments: a unit's segments of one month are one row.
        merged: dict[tuple[int, str], UnitCarbon] = {}
        for (unit_id, _), row in by_unit.items():
            found = merged.get((unit_id, row.period))
            if found is None:
                merged[(unit_id, row.period)] = row
            else:
                for utility, kg in row.kg.items():
                    found.kg[utility] = found.kg.get(utility, zero) + kg
        by_unit = merged
    units = sorted(by_unit.values(), key=lambda u: (u.unit_number, u.period))
    metered = {utility for utility, _ in unit_meters.values()}
    present = tuple(u for u in CARBON_UTILITIES if u in metered or any(m.use.get(u) for m in by_month.values()))
    return CarbonReport(estate.id, estate.country, [by_month[p] for p in months], units, dict(schedule), present)
