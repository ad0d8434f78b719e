"""Scheme finances for a body corporate (B1, B2): levies billed, collected and in arrears per month,
and common-property consumption (bulk meters minus the unit meters) with its cost at the tariff.

Collected is what owners paid into levy pockets in the month; levy arrears is what open levy
arrears records held at the month's end; utility spend is the common property's consumption
priced at the estate's default tariff; surplus is collected minus that spend.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing.tariffs import charge, load_prices
from app.models import Account, Estate, LedgerTransaction, Meter, Posting
from app.models.arrears import ArrearsRecord
from app.models.levies import LevyCharge
from app.models.metering import ConsumptionRollup
from app.money import quantize
from app.periods import current_period, local_month_bounds, month_bounds, previous_period


@dataclass
class CommonRow:
    """One day or month of one utility: what the bulk meter saw, what the units used, the rest."""

    start: date
    utility: str
    bulk: Decimal
    units: Decimal
    cost: Decimal | None  # the common part at the tariff; None without a price

    @property
    def common(self) -> Decimal:
        return self.bulk - self.units


def common_property(session: Session, estate: Estate, grain: str = "month", count: int = 12) -> list[CommonRow]:
    """Bulk minus unit meters per utility for the last `count` local days or months, newest first."""
    tz = estate.tz
    if grain == "day":
        today = date.today()
        first = today - timedelta(days=count - 1)
        from datetime import datetime, time
        since = datetime.combine(first, time(0), tz)
    else:
        period = current_period(tz)
        for _ in range(count - 1):
            period = previous_period(period)
        since, _ = month_bounds(period, tz)
    rows = session.execute(
        select(ConsumptionRollup.period_start, Meter.utility, Meter.role, func.sum(ConsumptionRollup.consumption))
        .join(Meter, Meter.id == ConsumptionRollup.meter_id)
        .where(Meter.estate_id == estate.id, Meter.role.in_(("bulk", "unit")), ConsumptionRollup.grain == grain,
               ConsumptionRollup.period_start >= since)
        .group_by(ConsumptionRollup.period_start, Meter.utility, Meter.role)).all()
    totals: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    starts = {}
    for start, utility, role, total in rows:
        local = start.astimezone(tz)
        totals[(local.date(), utility)][role] += Decimal(total or 0)
        starts[(local.date(), utility)] = local
    bulk_utilities = {u for (_, u), roles in totals.items() if "bulk" in roles}
    prices = load_prices(session, {estate.id})
    out = []
    for (day, utility), roles in sorted(totals.items(), key=lambda item: (item[0][0], item[0][1]), reverse=True):
        if utility not in bulk_utilities:
            continue  # nothing to compare without a bulk supply meter
        common = roles["bulk"] - roles["unit"]
        cost = None
        versions = prices.get((estate.id, utility), [])
        if versions and common > 0:
            begin = starts[(day, utility)]
            end = begin + timedelta(days=1) if grain == "day" else local_month_bounds(day.year, day.month, tz)[1]
            cost = quantize(charge(versions, tz, begin, end, common, {}), estate.currency)
        elif common <= 0:
            cost = Decimal(0)
        out.append(CommonRow(day, utility, roles["bulk"], roles["unit"], cost))
    return out


@dataclass
class SchemeMonth:
    period: str
    billed: Decimal
    collected: Decimal
    arrears: Decimal  # levy arrears outstanding at the month's end
    utility_spend: Decimal  # common property at the tariff

    @property
    def surplus(self) -> Decimal:
        return self.collected - self.utility_spend


def scheme_months(session: Session, estate: Estate, count: int = 12) -> list[SchemeMonth]:
    """This month and the ones before it (`count` in all), newest first."""
    periods = [current_period(estate.tz)]
    while len(periods) < count:
        periods.append(previous_period(periods[-1]))
    return levy_months(session, estate, periods, count)


def levy_months(session: Session, estate: Estate, periods: list[str], spend_months: int = 0) -> list[SchemeMonth]:
    """Levies billed, collected and in arrears for these months (and utility spend for the last `spend_months`)."""
    first = min(periods)
    billed = dict(session.execute(
        select(LevyCharge.period, func.sum(LevyCharge.amount))
        .where(LevyCharge.estate_id == estate.id, LevyCharge.status == "charged", LevyCharge.period >= first)
        .group_by(LevyCharge.period)).all())
    collected = dict(session.execute(
        select(LedgerTransaction.period, func.sum(Posting.amount))
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Posting.account_id)
        .where(Account.estate_id == estate.id, Account.kind == "owner_pocket", Account.utility == "levy",
               LedgerTransaction.kind == "topup", LedgerTransaction.period >= first)
        .group_by(LedgerTransaction.period)).all())
    # Levy arrears accounts: every posting ever, by month, then a running total.
    moves = dict(session.execute(
        select(LedgerTransaction.period, func.sum(Posting.amount))
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(ArrearsRecord, ArrearsRecord.account_id == Posting.account_id)
        .where(ArrearsRecord.estate_id == estate.id, ArrearsRecord.source == "levy")
        .group_by(LedgerTransaction.period)).all())
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for row in common_property(session, estate, "month", spend_months) if spend_months else []:
        spend[f"{row.start:%Y-%m}"] += row.cost or Decimal(0)
    out = []
    for period in periods:
        owed = -sum((Decimal(v) for p, v in moves.items() if p <= period), Decimal(0))
        out.append(SchemeMonth(period, quantize(Decimal(billed.get(period) or 0), estate.currency),
                               quantize(Decimal(collected.get(period) or 0), estate.currency),
                               quantize(owed, estate.currency), quantize(spend[period], estate.currency)))
    return out
