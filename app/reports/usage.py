"""Usage read models from the roll-ups (T1, T2): chart series per grain and a unit's dashboard figures.

Everything here reads ConsumptionRollup (grains hour/day/month; a week is the sum of its
seven days), never raw readings; "live" use is the current and the previous local hour.
Days, weeks (Monday to Sunday) and months are the estate's local ones.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import tariffs
from app.billing.charges import in_pocket_terms
from app.models import Meter, Unit, utcnow
from app.models.metering import ConsumptionRollup
from app.money import UTILITY_UNITS
from app.periods import add_months
from app.reports.summaries import MeterView, StatementLine, UnitCard, recent_pocket_activity, unit_cards

GRAINS = {"daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}
PERIODS_SHOWN = {"daily": 30, "weekly": 12, "monthly": 12}
CREDIT_HISTORY_DAYS = 14  # "days of credit left" looks back over this many complete days
MAX_CREDIT_MONTHS = 120  # days of credit walks at most this many month ends; beyond, standing charges are left out


class UsageError(ValueError):
    """A usage question that cannot be answered (unknown grain)."""


@dataclass(frozen=True)
class UsagePoint:
    """Consumption in one local period."""

    start: date
    label: str
    consumption: Decimal


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """A local date's start as a UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def period_starts(grain: str, today: date) -> list[date]:
    """The local start dates of the periods a chart shows, oldest first, the current one last."""
    count = PERIODS_SHOWN.get(grain)
    if count is None:
        raise UsageError(f"grain must be one of {', '.join(GRAINS)}")
    if grain == "daily":
        return [today - timedelta(days=count - 1 - i) for i in range(count)]
    if grain == "weekly":
        monday = today - timedelta(days=today.weekday())
        return [monday - timedelta(weeks=count - 1 - i) for i in range(count)]
    first = today.replace(day=1)
    return [add_months(first, i - (count - 1)) for i in range(count)]


def _label(grain: str, start: date) -> str:
    """A period's chart and table label in the reader's language (English: "Tue 3 Nov", "Week of 3 Nov")."""
    from flask_babel import gettext

    from app.i18n.formatting import local_date

    if grain == "daily":
        return local_date(start, "%a %-d %b")
    if grain == "weekly":
        return gettext("Week of %(day)s", day=local_date(start, "%-d %b"))
    return local_date(start, "%b %Y")


def day_totals(session: Session, meter_ids: list[int], first: date, end: date,
               tz: ZoneInfo) -> dict[date, Decimal]:
    """Consumption per local day in [first, end) summed over the meters, from the day roll-ups."""
    return _grain_totals(session, "day", meter_ids, first, end, tz)


def month_totals(session: Session, meter_ids: list[int], first: date, end: date,
                 tz: ZoneInfo) -> dict[date, Decimal]:
    """Consumption per local month starting in [first, end) summed over the meters, from the month roll-ups."""
    return _grain_totals(session, "month", meter_ids, first, end, tz)


def _grain_totals(session: Session, grain: str, meter_ids: list[int], first: date, end: date,
                  tz: ZoneInfo) -> dict[date, Decimal]:
    """Roll-ups of one grain starting in [first, end), summed over the meters, by local start date."""
    totals: dict[date, Decimal] = defaultdict(Decimal)
    if not meter_ids:
        return totals
    rows = session.execute(
        select(ConsumptionRollup.period_start, func.sum(ConsumptionRollup.consumption))
        .where(ConsumptionRollup.grain == grain, ConsumptionRollup.meter_id.in_(meter_ids),
               ConsumptionRollup.period_start >= local_midnight(first, tz),
               ConsumptionRollup.period_start < local_midnight(end, tz))
        .group_by(ConsumptionRollup.period_start))
    for start, total in rows:
        local = start.astimezone(tz).date()
        totals[local.replace(day=1) if grain == "month" else local] += Decimal(total)
    return totals


def unit_meters(session: Session, unit_id: int) -> list[tuple[str, int]]:
    """The unit's own meters as (utility, meter id), in utility then id order."""
    return session.execute(select(Meter.utility, Meter.id).where(
        Meter.unit_id == unit_id, Meter.role == "unit").order_by(Meter.utility, Meter.id)).all()


def usage_series(session: Session, meter_ids: list[int], grain: str, tz: ZoneInfo,
                 now: datetime | None = None) -> list[UsagePoint]:
    """Consumption of the meters per local day (30), week (12, Monday-based) or month (12), oldest first."""
    today = (now or utcnow()).astimezone(tz).date()
    starts = period_starts(grain, today)
    totals: dict[date, Decimal] = defaultdict(Decimal)
    if grain == "monthly":
        totals.update(month_totals(session, meter_ids, starts[0], add_months(starts[-1], 1), tz))
    else:
        days = day_totals(session, meter_ids, starts[0], today + timedelta(days=1), tz)
        for day, total in days.items():
            key = day if grain == "daily" else day - timedelta(days=day.weekday())
            totals[key] += total
    return [UsagePoint(start, _label(grain, start), totals.get(start, Decimal(0))) for start in starts]


# --- the tenant dashboard (T1) ----------------------------------------------------------


@dataclass
class PocketFigures:
    """One pocket on the dashboard: balance, what it is worth, recent use and days of credit left."""

    utility: str
    commodity: str
    balance: Decimal
    quantity_unit: str  # KWH or KL
    metered: bool
    currency: str
    balance_value: Decimal | None = None  # units mode: the balance at today's tariff
    recent: Decimal = Decimal(0)  # since the start of the previous local hour
    today: Decimal = Decimal(0)
    this_month: Decimal = Decimal(0)
    daily_average: Decimal | None = None  # over the last CREDIT_HISTORY_DAYS complete days (those reported)
    daily_cost: Decimal | None = None  # that average at today's tariff (currency pockets)
    days_left: Decimal | None = None  # None: no recent use to measure against

    @property
    def units_mode(self) -> bool:
        return self.commodity in ("KWH", "KL")


@dataclass
class UnitDashboard:
    card: UnitCard
    pockets: list[PocketFigures]
    activity: list[StatementLine]
    utilities: list[str]  # metered utilities, in pocket order (the chart's choices)
    as_of: datetime
    recent_since: datetime  # the start of the previous local hour
    meter_ids: dict[str, list[int]] = field(default_factory=dict)


def value_at_tariff(prices: list[tariffs.Price], tz: ZoneInfo, now: datetime, quantity: Decimal,
                    used_this_month: Decimal) -> Decimal | None:
    """What `quantity` costs at today's tariff, used evenly over the last day; None without a tariff."""
    if not prices or quantity <= 0:
        return Decimal(0) if prices else None
    month = now.astimezone(tz).date().replace(day=1)
    try:
        return tariffs.charge(prices, tz, now - timedelta(days=1), now, quantity, {month: used_this_month})
    except tariffs.TariffError:
        return None


def days_of_credit(balance: Decimal, per_day: Decimal | None, today: date | None = None,
                   monthly: Decimal = Decimal(0)) -> Decimal | None:
    """Whole days a balance lasts at a daily spend, counting today; 0 when nothing is left, None without a spend.

    `monthly` (the standing charges, in the balance's terms) comes off on every coming 1st, as
    billing deducts it with the month's first reading; the walk goes a month at a time.
    """
    if balance <= 0:
        return Decimal(0)
    if not per_day or per_day <= 0:
        return None
    days = Decimal(0)
    if monthly > 0 and today is not None:
        for _ in range(MAX_CREDIT_MONTHS):
            next_first = add_months(today, 1)
            to_month_end = per_day * (next_first - today).days
            if balance < to_month_end:
                break
            days += (next_first - today).days
            balance -= to_month_end + monthly
            if balance < 0:
                return days
            today = next_first
    return days + (balance / per_day).quantize(Decimal(1), rounding=ROUND_FLOOR)


def standing_charge(estate, pocket, versions: list[tariffs.Price], today: date) -> Decimal:
    """One meter's monthly standing charge under today's version, as the pocket holds it (0 if none)."""
    price = tariffs.price_on(versions, today) if versions else None
    if price is None or price.standing_charge <= 0:
        return Decimal(0)
    return in_pocket_terms(estate, pocket, price.standing_charge, price) or Decimal(0)


def meter_figures(session: Session, meter_ids: list[int], tz: ZoneInfo, first: date, month_start: date,
                  recent_since: datetime) -> tuple[dict, dict, dict]:
    """Per meter, from the roll-ups: use since `recent_since`, per local day since `first`, and this month."""
    recent: dict[int, Decimal] = defaultdict(Decimal)
    per_meter_day: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    month_total: dict[int, Decimal] = defaultdict(Decimal)
    if not meter_ids:
        return recent, per_meter_day, month_total
    # One query for the three grains: each request pays a round trip per query.
    for meter_id, grain, start, consumption in session.execute(
            select(ConsumptionRollup.meter_id, ConsumptionRollup.grain, ConsumptionRollup.period_start,
                   ConsumptionRollup.consumption)
            .where(ConsumptionRollup.meter_id.in_(meter_ids),
                   ((ConsumptionRollup.grain == "hour") & (ConsumptionRollup.period_start >= recent_since))
                   | ((ConsumptionRollup.grain == "day")
                      & (ConsumptionRollup.period_start >= local_midnight(first, tz)))
                   | ((ConsumptionRollup.grain == "month")
                      & (ConsumptionRollup.period_start == local_midnight(month_start, tz))))):
        if grain == "hour":
            recent[meter_id] += Decimal(consumption)
        elif grain == "day":
            per_meter_day[meter_id][start.astimezone(tz).date()] += Decimal(consumption)
        else:
            month_total[meter_id] += Decimal(consumption)
    return recent, per_meter_day, month_total


def unit_dashboard(session: Session, unit: Unit, now: datetime | None = None, *, windows=None) -> UnitDashboard:
    """The tenant dashboard of one unit: pockets with their figures, supply, meters, recent activity."""
    now = now or utcnow()
    card = unit_cards(session, [unit])[0]
    estate = card.estate
    tz = estate.tz
    today = now.astimezone(tz).date()
    # The card has loaded the unit's meters already.
    meters = sorted((m for m in card.meters if m.role == "unit"), key=lambda m: (m.utility, m.id))
    by_utility: dict[str, list[MeterView]] = defaultdict(list)
    for meter in meters:
        by_utility[meter.utility].append(meter)
    ids = [m.id for m in meters]
    first = today - timedelta(days=CREDIT_HISTORY_DAYS)
    recent_since = (now.astimezone(tz).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)).astimezone(UTC)
    recent, per_meter_day, month_total = meter_figures(session, ids, tz, first, today.replace(day=1), recent_since)
    prices = tariffs.class_prices(session, {estate.id})
    class_key = tariffs.unit_class_keys(session, {unit.id}).get(unit.id)  # the unit's tariff class
    pockets = []
    for pocket in card.pockets:
        group = by_utility.get(pocket.utility, [])
        figures = PocketFigures(pocket.utility, pocket.commodity, pocket.balance,
                                UTILITY_UNITS[pocket.utility], bool(group), estate.currency)
        versions = tariffs.prices_for(prices, estate.id, pocket.utility, class_key)
        used_this_month = sum((month_total[m.id] for m in group), Decimal(0))
        if figures.units_mode:
            figures.balance_value = value_at_tariff(versions, tz, now, max(pocket.balance, Decimal(0)),
                                                    used_this_month)
        if group:
            figures.today = sum((per_meter_day[m.id].get(today, Decimal(0)) for m in group), Decimal(0))
            figures.this_month = used_this_month
            past = {d for m in group for d in per_meter_day[m.id] if d < today}
            history = sum((v for m in group for d, v in per_meter_day[m.id].items() if d < today), Decimal(0))
            # A meter younger than the window is averaged over the days it has reported.
            figures.daily_average = history / len(past) if past else None
            figures.recent = sum((recent[m.id] for m in group), Decimal(0))
            monthly = len(group) * standing_charge(estate, pocket, versions, today)
            if figures.units_mode:
                figures.days_left = days_of_credit(pocket.balance, figures.daily_average, today, monthly)
            else:
                if figures.daily_average is not None:
                    figures.daily_cost = value_at_tariff(versions, tz, now, figures.daily_average, used_this_month)
                figures.days_left = days_of_credit(pocket.balance, figures.daily_cost, today, monthly)
        pockets.append(figures)
    activity = recent_pocket_activity(session, [p.account_id for p in card.pockets], limit=10, windows=windows)
    utilities = [p.utility for p in card.pockets if by_utility.get(p.utility)]
    utilities += [u for u in by_utility if u not in utilities]
    return UnitDashboard(card, pockets, activity, utilities, now, recent_since,
                         {u: [m.id for m in group] for u, group in by_utility.items()})
