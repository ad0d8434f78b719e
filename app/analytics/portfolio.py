"""Owner portfolio (O1): headline figures over a set of units, each aggregated in SQL.

Balances come from the pockets' cached balances, this month's consumption from the
monthly roll-ups (M5), billed and collected from the pockets' postings: a fixed number
of queries however many units the owner has; raw readings are never read.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.analytics.reconciliation import current_period_filter, pocket_flows
from app.models import Account, ConsumptionRollup, Estate, Meter, Unit, Wallet, utcnow
from app.models.estate import OCCUPANCY_STATUSES
from app.models.meter import UTILITIES
from app.money import UTILITY_UNITS
from app.periods import month_start  # a local month's start: the roll-ups' key

UNITS_PER_PAGE = 25


@dataclass
class Quantity:
    """An amount with its commodity (a currency code, KWH or KL)."""

    utility: str | None
    amount: Decimal
    commodity: str


@dataclass
class PortfolioFigures:
    units: int
    by_status: dict[str, int]
    balances: list[Quantity] = field(default_factory=list)     # per utility and commodity
    consumption: list[Quantity] = field(default_factory=list)  # this month, unit meters, per utility
    solar_generated: Decimal | None = None                      # this month, solar meters (kWh)
    billed: list[Quantity] = field(default_factory=list)       # this month, per commodity
    collected: list[Quantity] = field(default_factory=list)    # this month, per commodity

    @property
    def vacancy_percent(self) -> Decimal | None:
        """Units vacant now as a share of all units (maintenance counts separately)."""
        if not self.units:
            return None
        return (Decimal(100) * self.by_status.get("vacant", 0) / self.units).quantize(Decimal("0.1"))


def portfolio_figures(session: Session, unit_ids: Select, now: datetime | None = None) -> PortfolioFigures:
    """Units by status, balances per utility, this month's consumption, billed and collected."""
    now = now or utcnow()
    by_status: dict[str, int] = defaultdict(int)
    estates: dict[int, str] = {}  # id -> timezone
    for status, estate_id, timezone, count in session.execute(
            select(Unit.occupancy_status, Estate.id, Estate.timezone, func.count(Unit.id))
            .join(Estate, Estate.id == Unit.estate_id).where(Unit.id.in_(unit_ids))
            .group_by(Unit.occupancy_status, Estate.id, Estate.timezone)):
        by_status[status] += count
        estates[estate_id] = timezone
    figures = PortfolioFigures(units=sum(by_status.values()),
                               by_status={s: by_status.get(s, 0) for s in OCCUPANCY_STATUSES})
    if not figures.units:
        return figures
    balances = session.execute(
        select(Account.utility, Account.commodity, func.sum(Account.balance))
        .join(Wallet, Wallet.id == Account.wallet_id)
        .where(Wallet.unit_id.in_(unit_ids), Account.kind == "pocket")
        .group_by(Account.utility, Account.commodity))
    figures.balances = sorted((Quantity(u, Decimal(total), c) for u, c, total in balances), key=_order)

    timezones = sorted(set(estates.values()))
    for utility, role, total in month_consumption(session, unit_ids, timezones, now):
        if role == "solar":
            figures.solar_generated = (figures.solar_generated or Decimal(0)) + Decimal(total)
        else:
            figures.consumption.append(Quantity(utility, Decimal(total), UTILITY_UNITS.get(utility, "")))
    figures.consumption.sort(key=_order)

    sides: dict[str, dict[str, Decimal]] = {"billed": defaultdict(Decimal), "collected": defaultdict(Decimal)}
    for _period, _utility, commodity, side, amount in pocket_flows(
            session, unit_ids, current_period_filter(timezones, now), estate_ids=list(estates)):
        sides[side][commodity] += amount
    figures.billed = [Quantity(None, amount, c) for c, amount in sorted(sides["billed"].items(), key=_money_first)]
    figures.collected = [Quantity(None, amount, c) for c, amount in sorted(sides["collected"].items(), key=_money_first)]
    return figures


def month_consumption(session: Session, unit_ids: Select, timezones: list[str], now: datetime) -> list[tuple]:
    """This local month's use per (utility, meter role) on the units' unit and solar meters, from the monthly roll-ups."""
    this_month = or_(*[and_(Estate.timezone == tz, ConsumptionRollup.period_start == month_start(now, tz))
                       for tz in timezones])
    return session.execute(
        select(Meter.utility, Meter.role, func.sum(ConsumptionRollup.consumption))
        .join(ConsumptionRollup, ConsumptionRollup.meter_id == Meter.id)
        .join(Estate, Estate.id == Meter.estate_id)
        .where(Meter.unit_id.in_(unit_ids), Meter.role.in_(("unit", "solar")),
               ConsumptionRollup.grain == "month", this_month)
        .group_by(Meter.utility, Meter.role)).all()


def units_page(session: Session, unit_ids: Select, page: int, per_page: int = UNITS_PER_PAGE,
               total: int | None = None) -> tuple[list[Unit], int]:
    """One page of the units, ordered by estate and number, and how many pages there are (of `total` units)."""
    if total is None:
        total = session.scalar(select(func.count()).select_from(Unit).where(Unit.id.in_(unit_ids))) or 0
    pages = max(1, -(-total // per_page))
    units = list(session.scalars(
        select(Unit).join(Estate).where(Unit.id.in_(unit_ids)).order_by(Estate.name, Unit.number, Unit.id)
        .limit(per_page).offset((min(page, pages) - 1) * per_page)))
    return units, pages


def all_units(session: Session, unit_ids: Select) -> list[Unit]:
    """Every unit, ordered by estate and number (for exports)."""
    return list(session.scalars(select(Unit).join(Estate).where(Unit.id.in_(unit_ids))
                                .order_by(Estate.name, Unit.number, Unit.id)))


def _order(quantity: Quantity) -> tuple[int, str]:
    utility = quantity.utility or ""
    return (UTILITIES.index(utility) if utility in UTILITIES else len(UTILITIES), quantity.commodity)


def _money_first(item: tuple[str, Decimal]) -> tuple[bool, str]:
    """Currencies before kWh and kL."""
    return (item[0] in UTILITY_UNITS.values(), item[0])
