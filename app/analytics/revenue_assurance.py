"""Revenue assurance (U4): expected vs billed vs collected, meter anomaly scores and cases.

- Expected revenue: each unit meter's monthly roll-up priced at its unit's tariff (class and
  version in force that month) plus the standing charge; billed: the month's use and standing
  charge entries on the estate's pockets; collected: the month's top-ups into them.
- Anomaly score 0-100 per unit meter and local day (`score_meter`, a pure function, and
  `score_estate`, which loads everything for an estate in a handful of queries and stores
  `MeterAnomaly` rows). Each score lists its parts, each part says why.
- A score at or above CASE_SCORE opens a `RevenueCase` unless the meter has one not resolved;
  cases are investigated (open, investigating, resolved with a note), assigned and audited.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.analytics import losses
from app.analytics.losses import _utc, local_day_start
from app.audit import record
from app.billing.tariffs import TariffError, charge, class_prices, price_on, prices_for, unit_class_keys
from app.models import (Account, ConsumptionRollup, Estate, LedgerTransaction, Meter, Posting, TariffClass, Unit,
                        User, Wallet, utcnow)
from app.models.utility import CASE_STATUSES, MeterAnomaly, RevenueCase
from app.money import quantize
from app.periods import month_bounds, months_back, shift_period

PRICED_UTILITIES = ("electricity", "water", "hot_water")
CASE_SCORE = 50
HISTORY_DAYS = 30
MIN_HISTORY_DAYS = 7  # fewer days of history say nothing about a meter's usual use
ZERO_HOURS = 24  # zero use on an occupied unit for more than this is a possible bypass
SUDDEN_FACTOR = Decimal(3)  # more than 200 % above the meter's own average
COLLAPSE_SHARE = Decimal("0.2")  # a month's top-ups below 20 % of the meter's average
POINTS = {"z_score": 30, "sudden_change": 20, "zero_use": 40, "negative_use": 30, "purchase_collapse": 20}
RULE_LABELS = {"z_score": _l("Unusual day"), "sudden_change": _l("Sudden change"),
               "zero_use": _l("Zero use (possible bypass)"), "negative_use": _l("Negative use"),
               "purchase_collapse": _l("Purchases collapsed")}


class CaseError(ValueError):
    """A case change the rules refuse; `errors` is keyed by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# --- expected, billed, collected ---------------------------------------------------------------


@dataclass
class RevenueMonth:
    period: str
    currency: str
    expected: Decimal = Decimal(0)
    billed: Decimal | None = Decimal(0)
    collected: Decimal | None = Decimal(0)
    consumption: dict[str, Decimal] = field(default_factory=dict)
    unpriced_meters: int = 0

    @property
    def unbilled(self) -> Decimal | None:
        return None if self.billed is None else self.expected - self.billed

    @property
    def collection_percent(self) -> Decimal | None:
        if self.collected is None or not self.expected:
            return None
        return (self.collected * 100 / self.expected).quantize(Decimal("0.1"))


def revenue_months(session: Session, estate: Estate, last_period: str, count: int = 12) -> list[RevenueMonth]:
    """Expected, billed and collected revenue per local month, the `count` months to `last_period`."""
    periods = months_back(last_period, count)
    tz = estate.tz
    meters = session.execute(select(Meter.id, Meter.unit_id, Meter.utility).where(
        Meter.estate_id == estate.id, Meter.role == "unit", Meter.unit_id.is_not(None),
        Meter.utility.in_(PRICED_UTILITIES))).all()
    keys = unit_class_keys(session, {m.unit_id for m in meters})
    prices = class_prices(session, {estate.id})
    bounds = {p: month_bounds(p, tz) for p in periods}
    by_start = {_utc(start): p for p, (start, _) in bounds.items()}
    months = {p: RevenueMonth(p, estate.currency) for p in periods}
    per_unit: dict[tuple, Decimal | None] = {}  # (utility, class, period) -> the month's price of one unit

    def linear(utility, key) -> bool:
        return not any(v.kind == "block" for v in prices_for(prices, estate.id, utility, key))

    # Flat and time-of-use classes: one grouped read of the month roll-ups per utility, class and
    # month (sum, positive sum, meters, meters with use), priced once per group.
    if meters:
        rollup = ConsumptionRollup
        positive = case((rollup.consumption > 0, rollup.consumption), else_=0)
        groups = session.execute(
            select(Meter.utility, Unit.tariff_class_id, TariffClass.is_default, rollup.period_start,
                   func.sum(rollup.consumption), func.sum(positive), func.count(),
                   func.sum(case((rollup.consumption > 0, 1), else_=0)))
            .select_from(rollup).join(Meter, Meter.id == rollup.meter_id).join(Unit, Unit.id == Meter.unit_id)
            .outerjoin(TariffClass, TariffClass.id == Unit.tariff_class_id)
            .where(Meter.estate_id == estate.id, Meter.role == "unit", Meter.utility.in_(PRICED_UTILITIES),
                   rollup.grain == "month", rollup.period_start.in_(list(by_start)))
            .group_by(Meter.utility, Unit.tariff_class_id, TariffClass.is_default, rollup.period_start))
        for utility, class_id, is_default, period_start, total, used, count, with_use in groups:
            period = by_start.get(_utc(period_start))
            key = None if class_id is None or is_default else class_id
            if period is None or not linear(utility, key):
                continue
            month = months[period]
            month.consumption[utility] = month.consumption.get(utility, Decimal(0)) + Decimal(total)
            versions = prices_for(prices, estate.id, utility, key)
            start, end = bounds[period]
            price = price_on(versions, start.astimezone(tz).date())
            if price is None:
                month.unpriced_meters += count
                continue
            try:
                amount = _month_charge(per_unit, (utility, key, period), versions, tz, start, end, Decimal(used)) \
                    if with_use else Decimal(0)
            except TariffError:  # only meters with use are charged, so only they are unpriced
                month.unpriced_meters += with_use
                month.expected += (count - with_use) * price.standing_charge
                continue
            month.expected += amount + count * price.standing_charge
    # Block classes are not linear: each meter's month is charged on its own.
    meter_of = {m.id: m for m in meters if not linear(m.utility, keys.get(m.unit_id))}
    used: dict[tuple[int, str], Decimal] = {}
    if meter_of:
        for meter_id, period_start, consumption in session.execute(
                select(ConsumptionRollup.meter_id, ConsumptionRollup.period_start, ConsumptionRollup.consumption)
                .where(ConsumptionRollup.grain == "month", ConsumptionRollup.meter_id.in_(list(meter_of)),
                       ConsumptionRollup.period_start.in_(list(by_start)))):
            period = by_start.get(_utc(period_start))
            if period:
                used[(meter_id, period)] = Decimal(consumption)
    for (meter_id, period), quantity in used.items():
        meter = meter_of[meter_id]
        month = months[period]
        month.consumption[meter.utility] = month.consumption.get(meter.utility, Decimal(0)) + quantity
        versions = prices_for(prices, estate.id, meter.utility, keys.get(meter.unit_id))
        start, end = bounds[period]
        price = price_on(versions, start.astimezone(tz).date())
        if price is None:
            month.unpriced_meters += 1
            continue
        try:
            amount = charge(versions, tz, start, end, quantity, {}) if quantity > 0 else Decimal(0)
        except TariffError:
            month.unpriced_meters += 1
            continue
        month.expected += amount + price.standing_charge
    for month in months.values():
        month.expected = quantize(month.expected, estate.currency)
    in_currency = estate.wallet_denomination == "currency"
    flows = session.execute(
        select(LedgerTransaction.period, LedgerTransaction.kind, func.sum(Posting.amount))
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Posting.account_id)
        .where(LedgerTransaction.estate_id == estate.id, LedgerTransaction.period.in_(periods),
               Account.kind == "pocket", Account.commodity == estate.currency,
               LedgerTransaction.kind.in_(("consumption", "standing_charge", "topup")))
        .group_by(LedgerTransaction.period, LedgerTransaction.kind))
    for period, kind, total in flows:
        month = months[period]
        if kind == "topup":
            month.collected += Decimal(total)
        else:
            month.billed -= Decimal(total)
    if not in_currency:  # wallets hold kWh/kL: pockets carry no money to compare
        for month in months.values():
            month.billed = month.collected = None
    return [months[p] for p in periods]


def _month_charge(per_unit: dict, key: tuple, versions, tz, start: datetime, end: datetime,
                  quantity: Decimal) -> Decimal:
    """charge() of a month's quantity. Flat and time-of-use prices are linear in the quantity (a month
    is priced as consumed evenly), so one unit is priced once per class and month and scaled: the
    month's pieces (one per local day at least) are cut once, not once per meter. Block prices are
    not linear and are charged per meter. A TariffError is remembered and raised again."""
    if any(version.kind == "block" for version in versions):
        return charge(versions, tz, start, end, quantity, {})
    if key not in per_unit:
        try:
            per_unit[key] = charge(versions, tz, start, end, Decimal(1), {})
        except TariffError:
            per_unit[key] = None
    if per_unit[key] is None:
        raise TariffError("no tariff in force for part of the month")
    return quantity * per_unit[key]


# --- anomaly scores ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterDay:
    """What the score of one meter on one day is made from (all plain values)."""

    consumption: Decimal
    history: tuple[Decimal, ...]  # the previous days' use (days with readings), oldest first
    zero_hours: int  # hours of zero use (with readings) running up to the day's end
    negative: bool  # a negative roll-up that day
    bidirectional: bool
    occupied: bool
    purchases_last_month: Decimal | None = None
    purchases_average: Decimal | None = None  # the months before it


def score_meter(day: MeterDay) -> tuple[int, list[dict]]:
    """The anomaly score 0-100 and its parts [{rule, points, why}]."""
    parts: list[dict] = []
    history = [float(x) for x in day.history]
    used = float(day.consumption)
    if len(history) >= MIN_HISTORY_DAYS:
        mean = sum(history) / len(history)
        sd = math.sqrt(sum((x - mean) ** 2 for x in history) / len(history))
        if sd > 0:
            z = (used - mean) / sd
            if abs(z) > 2:
                points = min(POINTS["z_score"], round(10 * (abs(z) - 2)) or 1)
                parts.append({"rule": "z_score", "points": points,
                              "why": f"used {used:,.2f} against a 30-day average of {mean:,.2f} (z = {z:+.1f})"})
        if mean > 0 and Decimal(str(used)) > SUDDEN_FACTOR * Decimal(str(mean)):
            parts.append({"rule": "sudden_change", "points": POINTS["sudden_change"],
                          "why": f"{used / mean:,.1f} times its 30-day average: a change of more than 200 %"})
    if day.occupied and day.zero_hours > ZERO_HOURS:
        parts.append({"rule": "zero_use", "points": POINTS["zero_use"],
                      "why": f"no use for {day.zero_hours} h on an occupied unit"})
    if day.negative and not day.bidirectional:
        parts.append({"rule": "negative_use", "points": POINTS["negative_use"],
                      "why": "negative use on a meter that is not net-metered"})
    if (day.purchases_average and day.purchases_average > 0 and day.purchases_last_month is not None
            and day.purchases_last_month < COLLAPSE_SHARE * day.purchases_average):
        parts.append({"rule": "purchase_collapse", "points": POINTS["purchase_collapse"],
                      "why": f"last month's top-ups {day.purchases_last_month:,.2f} are under 20 % of its "
                             f"average {day.purchases_average:,.2f}"})
    return min(100, sum(p["points"] for p in parts)), parts


def score_estate(session: Session, estate: Estate, day: date, *, open_cases: bool = True) -> list[MeterAnomaly]:
    """Score every attached unit meter of the estate on a local day and store it; the caller commits."""
    tz = estate.tz
    meters = session.execute(
        select(Meter.id, Meter.unit_id, Meter.bidirectional, Meter.utility, Unit.occupancy_status)
        .join(Unit, Unit.id == Meter.unit_id)
        .where(Meter.estate_id == estate.id, Meter.role == "unit", Meter.detached_at.is_(None),
               Meter.utility.in_(PRICED_UTILITIES))).all()
    if not meters:
        return []
    ids = [m.id for m in meters]
    day_start, day_end = local_day_start(day, tz), local_day_start(day + timedelta(days=1), tz)
    history_start = local_day_start(day - timedelta(days=HISTORY_DAYS), tz)
    daily: dict[int, dict[datetime, tuple[Decimal, int]]] = defaultdict(dict)
    for meter_id, start, consumption, readings in losses.rollup_rows(session, "day", ids, history_start, day_end, tz):
        daily[meter_id][_utc(start)] = (Decimal(consumption), readings)
    hourly: dict[int, list[tuple[datetime, Decimal, int]]] = defaultdict(list)
    for meter_id, start, consumption, readings in losses.rollup_rows(session, "hour", ids,
                                                                      day_end - timedelta(hours=48), day_end, tz):
        hourly[meter_id].append((_utc(start), Decimal(consumption), readings))
    purchases = _monthly_purchases(session, estate, day)
    existing = {row.meter_id: row for row in session.scalars(
        select(MeterAnomaly).where(MeterAnomaly.estate_id == estate.id, MeterAnomaly.day == day))}
    stored = []
    for meter in meters:
        today = daily[meter.id].get(day_start, (Decimal(0), 0))
        history = tuple(value for start, (value, readings) in sorted(daily[meter.id].items())
                        if start < day_start and readings > 0)
        hours = hourly[meter.id]
        last_month, average = purchases.get((meter.unit_id, meter.utility), (None, None))
        facts = MeterDay(consumption=today[0], history=history, zero_hours=_trailing_zero_hours(hours),
                         negative=today[0] < 0 or any(c < 0 for start, c, _n in hours if start >= day_start),
                         bidirectional=meter.bidirectional, occupied=meter.occupancy_status == "occupied",
                         purchases_last_month=last_month, purchases_average=average)
        if today[1] == 0 and facts.zero_hours == 0:
            score, parts = 0, []  # no readings that day: offline, which meter watch reports
        else:
            score, parts = score_meter(facts)
        row = existing.get(meter.id)
        if row is None:
            row = MeterAnomaly(estate_id=estate.id, meter_id=meter.id, unit_id=meter.unit_id, day=day)
            session.add(row)
        row.score, row.parts, row.consumption, row.computed_at = score, parts, today[0], utcnow()
        stored.append(row)
    session.flush()
    if open_cases:
        _open_cases(session, estate, day, stored)
    return stored


def _trailing_zero_hours(hours: list[tuple[datetime, Decimal, int]]) -> int:
    """Hours of zero use with readings, counted back from the last hour until one had use."""
    count = 0
    for _hour, consumption, readings in reversed(hours):
        if readings == 0:
            continue  # an hour without readings neither breaks nor lengthens the run
        if consumption != 0:
            break
        count += 1
    return count


def _monthly_purchases(session: Session, estate: Estate, day: date) -> dict[tuple[int, str], tuple]:
    """(unit, utility) -> (last complete month's top-ups, average of the three months before)."""
    last = shift_period(f"{day.year:04d}-{day.month:02d}", -1)
    periods = months_back(last, 4)
    totals: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(dict)
    for unit_id, utility, period, total in session.execute(
            select(Wallet.unit_id, Account.utility, LedgerTransaction.period, func.sum(Posting.amount))
            .join(Account, Account.wallet_id == Wallet.id)
            .join(Posting, Posting.account_id == Account.id)
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(Wallet.estate_id == estate.id, Account.kind == "pocket", LedgerTransaction.kind == "topup",
                   LedgerTransaction.period.in_(periods))
            .group_by(Wallet.unit_id, Account.utility, LedgerTransaction.period)):
        totals[(unit_id, utility)][period] = Decimal(total)
    out = {}
    for key, by_period in totals.items():
        before = [by_period.get(p, Decimal(0)) for p in periods[:-1]]
        out[key] = (by_period.get(last, Decimal(0)), sum(before, Decimal(0)) / len(before))
    return out


def _open_cases(session: Session, estate: Estate, day: date, rows: list[MeterAnomaly]) -> int:
    flagged = [row for row in rows if row.score >= CASE_SCORE]
    if not flagged:
        return 0
    busy = set(session.scalars(select(RevenueCase.meter_id).where(
        RevenueCase.meter_id.in_([r.meter_id for r in flagged]), RevenueCase.status != "resolved")))
    opened = 0
    for row in flagged:
        if row.meter_id in busy:
            continue
        case = RevenueCase(estate_id=estate.id, meter_id=row.meter_id, unit_id=row.unit_id, opened_on=day,
                           score=row.score, parts=row.parts, status="open")
        session.add(case)
        session.flush()
        record(session, "revenue_case.open", case, new={"score": row.score, "day": day.isoformat()},
               estate_id=estate.id)
        opened += 1
    return opened


def latest_scores(session: Session, estate_id: int, limit: int = 50, *, flagged_only: bool = False
                  ) -> tuple[date | None, list]:
    """The latest scored day's meters, highest score first: (day, [(MeterAnomaly, Meter, Unit)]);
    with `flagged_only` only those that scored above 0 (the page lists those and counts the rest)."""
    day = session.scalar(select(func.max(MeterAnomaly.day)).where(MeterAnomaly.estate_id == estate_id))
    if day is None:
        return None, []
    query = (select(MeterAnomaly, Meter, Unit).join(Meter, Meter.id == MeterAnomaly.meter_id)
             .outerjoin(Unit, Unit.id == MeterAnomaly.unit_id)
             .where(MeterAnomaly.estate_id == estate_id, MeterAnomaly.day == day))
    if flagged_only:
        query = query.where(MeterAnomaly.score > 0)
    return day, session.execute(query.order_by(MeterAnomaly.score.desc(), Unit.number).limit(limit)).all()


def scored_count(session: Session, estate_id: int, day: date) -> int:
    """How many meters were scored on the day."""
    return session.scalar(select(func.count()).select_from(MeterAnomaly).where(
        MeterAnomaly.estate_id == estate_id, MeterAnomaly.day == day)) or 0


def cases(session: Session, estate_id: int, *, include_resolved: bool = True) -> list:
    """The estate's cases, open ones first, newest first: [(RevenueCase, Meter, Unit, assignee)]."""
    query = (select(RevenueCase, Meter, Unit, User).join(Meter, Meter.id == RevenueCase.meter_id)
             .outerjoin(Unit, Unit.id == RevenueCase.unit_id)
             .outerjoin(User, User.id == RevenueCase.assigned_user_id)
             .where(RevenueCase.estate_id == estate_id))
    if not include_resolved:
        query = query.where(RevenueCase.status != "resolved")
    order = (RevenueCase.status == "resolved", RevenueCase.opened_on.desc(), RevenueCase.id.desc())
    return session.execute(query.order_by(*order)).all()


def update_case(session: Session, estate: Estate, case_id: int, form, *, user_id: int | None,
                assignable: list[User]) -> RevenueCase:
    """Change a case's status, assignee and note (resolving needs a note); audited, commits once."""
    case = session.get(RevenueCase, case_id)
    if case is None or case.estate_id != estate.id:
        raise LookupError("no such case")
    errors: dict[str, str] = {}
    status = (form.get("status") or case.status).strip()
    if status not in CASE_STATUSES:
        errors["status"] = _("Status must be one of %(statuses)s.", statuses=", ".join(CASE_STATUSES))
    note = (form.get("note") or "").strip()
    if len(note) > 1000:
        errors["note"] = _("A note is at most 1000 characters.")
    if status == "resolved" and not (note or case.note):
        errors["note"] = _("Say how the case was resolved.")
    assignee = case.assigned_user_id
    raw = (form.get("assigned_user_id") or "").strip()
    if raw:
        allowed = {u.id for u in assignable}
        if not raw.isdigit() or int(raw) not in allowed:
            errors["assigned_user_id"] = _("Choose someone from the list.")
        else:
            assignee = int(raw)
    elif "assigned_user_id" in form:
        assignee = None
    if errors:
        raise CaseError(errors)
    old = {"status": case.status, "assigned_user_id": case.assigned_user_id, "note": case.note}
    case.status, case.assigned_user_id = status, assignee
    if note:
        case.note = note
    case.updated_at = utcnow()
    case.resolved_at = utcnow() if status == "resolved" else None
    record(session, "revenue_case.update", case, old=old,
           new={"status": case.status, "assigned_user_id": case.assigned_user_id, "note": case.note},
           estate_id=estate.id)
    session.commit()
    return case
