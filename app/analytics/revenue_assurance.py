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

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from babel.numbers import format_decimal
from flask_babel import gettext as _, lazy_gettext as _l
from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from app.analytics import losses
from app.analytics.losses import _utc, local_day_start
from app.audit import record
from app.billing.tariffs import TariffError, charge, class_prices, price_on, prices_for, unit_class_keys
from app.i18n import current_language
from app.i18n.formatting import number_text
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
    # (days, mean, population standard deviation) of the history, when computed elsewhere (the job
    # reads them from SQL); None: computed here from `history`.
    history_stats: tuple[int, float | None, float | None] | None = None


def history_stats(history) -> tuple[int, float | None, float | None]:
    """(days, mean, population standard deviation) of a meter's previous days' use."""
    values = [float(x) for x in history]
    if not values:
        return 0, None, None
    mean = sum(values) / len(values)
    return len(values), mean, math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))


def score_meter(day: MeterDay) -> tuple[int, list[dict]]:
    """The anomaly score 0-100 and its parts [{rule, points, why}].

    `why` is structured, {"code": rule, <its figures>}, and put into words in the reader's language
    when shown (`why_text`); rows stored before held the English sentence itself."""
    parts: list[dict] = []
    used = float(day.consumption)
    days, mean, sd = day.history_stats or history_stats(day.history)
    if days >= MIN_HISTORY_DAYS:
        if sd > 0:
            z = (used - mean) / sd
            if abs(z) > 2:
                points = min(POINTS["z_score"], round(10 * (abs(z) - 2)) or 1)
                parts.append({"rule": "z_score", "points": points,
                              "why": {"code": "z_score", "used": used, "mean": mean, "z": z}})
        if mean > 0 and Decimal(str(used)) > SUDDEN_FACTOR * Decimal(str(mean)):
            parts.append({"rule": "sudden_change", "points": POINTS["sudden_change"],
                          "why": {"code": "sudden_change", "ratio": used / mean}})
    if day.occupied and day.zero_hours > ZERO_HOURS:
        parts.append({"rule": "zero_use", "points": POINTS["zero_use"],
                      "why": {"code": "zero_use", "hours": day.zero_hours}})
    if day.negative and not day.bidirectional:
        parts.append({"rule": "negative_use", "points": POINTS["negative_use"], "why": {"code": "negative_use"}})
    if (day.purchases_average and day.purchases_average > 0 and day.purchases_last_month is not None
            and day.purchases_last_month < COLLAPSE_SHARE * day.purchases_average):
        parts.append({"rule": "purchase_collapse", "points": POINTS["purchase_collapse"],
                      "why": {"code": "purchase_collapse", "last": str(day.purchases_last_month),
                              "average": str(_plain(day.purchases_average))}})
    return min(100, sum(p["points"] for p in parts)), parts


def _plain(value: Decimal) -> Decimal:
    """An average of money kept to 6 places in the stored figures (shown with 2)."""
    return value.quantize(Decimal("0.000001"))


def why_text(part: dict) -> str:
    """A score part's reason in the reader's language; a row stored as English text is shown as it is."""
    why = part.get("why")
    if not isinstance(why, dict):
        return why or ""
    code = why.get("code", part.get("rule"))
    if code == "z_score":
        z = Decimal(str(why["z"])).quantize(Decimal("0.1"))  # signed, one decimal, not grouped: z = +1499.7
        return _("used %(used)s against a 30-day average of %(mean)s (z = %(z)s)",
                 used=number_text(why["used"], 2), mean=number_text(why["mean"], 2),
                 z=("+" if z >= 0 else "-") + format_decimal(abs(z), format="0.0", locale=current_language()))
    if code == "sudden_change":
        return _("%(ratio)s times its 30-day average: a change of more than 200 %%",
                 ratio=number_text(why["ratio"], 1))
    if code == "zero_use":
        return _("no use for %(hours)s h on an occupied unit", hours=number_text(why["hours"], 0))
    if code == "negative_use":
        return _("negative use on a meter that is not net-metered")
    if code == "purchase_collapse":
        return _("last month's top-ups %(last)s are under 20 %% of its average %(average)s",
                 last=number_text(why["last"], 2), average=number_text(why["average"], 2))
    return str(code)


# Per meter: the day's use and readings; days with readings, mean and population standard deviation of
# the 30 days before; a negative hour that day; the run of zero hours (hours with readings: the hours
# without neither break nor lengthen it) up to the day's end within the last 48 hours. The hours before
# the day are read only for the meters that used nothing in any hour of it ("quiet"): the others' run
# ends within the day.
_ANOMALY_INPUTS = """
WITH days AS ({days}), today AS ({today}),
quiet AS (
  SELECT meter_id FROM unnest(CAST(:ids AS integer[])) AS m(meter_id)
  WHERE NOT EXISTS (SELECT 1 FROM today t WHERE t.meter_id = m.meter_id AND t.readings > 0 AND t.consumption <> 0)),
hours AS (SELECT * FROM today UNION ALL {before}),
d AS (
  SELECT meter_id,
         sum(consumption) FILTER (WHERE period_start = :day_start) AS today,
         sum(readings) FILTER (WHERE period_start = :day_start) AS today_readings,
         count(*) FILTER (WHERE period_start < :day_start AND readings > 0) AS history_days,
         avg(consumption) FILTER (WHERE period_start < :day_start AND readings > 0) AS mean,
         stddev_pop(consumption) FILTER (WHERE period_start < :day_start AND readings > 0) AS sd
  FROM days GROUP BY meter_id),
h AS (
  SELECT meter_id, period_start, consumption, readings,
         max(period_start) FILTER (WHERE readings > 0 AND consumption <> 0) OVER (PARTITION BY meter_id) AS last_use
  FROM hours),
z AS (
  SELECT meter_id,
         count(*) FILTER (WHERE readings > 0 AND consumption = 0
                          AND (last_use IS NULL OR period_start > last_use)) AS zero_hours,
         bool_or(consumption < 0 AND period_start >= :day_start) AS negative_hour
  FROM h GROUP BY meter_id)
SELECT meter_id, today, today_readings, history_days, mean, sd, zero_hours, negative_hour
FROM d FULL JOIN z USING (meter_id)
"""


@dataclass(frozen=True)
class MeterInputs:
    """One meter's anomaly inputs on a day, as read from the roll-ups."""

    consumption: Decimal = Decimal(0)
    readings: int = 0
    history_days: int = 0
    mean: float | None = None
    sd: float | None = None
    zero_hours: int = 0
    negative: bool = False


def anomaly_inputs(session: Session, meter_ids: list[int], day: date, tz, *,
                   in_sql: bool | None = None) -> dict[int, MeterInputs]:
    """meter id -> its inputs on a local day, from the day roll-ups of the 30 days before and the hour
    roll-ups of the last 48 hours. On PostgreSQL computed in one statement (a few hundred rows come
    back, not the tens of thousands of roll-ups); elsewhere from the rows in Python, the same way."""
    day_start, day_end = local_day_start(day, tz), local_day_start(day + timedelta(days=1), tz)
    history_start = local_day_start(day - timedelta(days=HISTORY_DAYS), tz)
    hours_start = day_end - timedelta(hours=48)
    if in_sql is None:
        in_sql = session.get_bind().dialect.name == "postgresql"
    if in_sql:
        statement = _ANOMALY_INPUTS.format(
            days=losses.ROLLUP_SOURCE.format(grain="day", ids=":ids", start="history_start", end="day_end"),
            today=losses.ROLLUP_SOURCE.format(grain="hour", ids=":ids", start="day_start", end="day_end"),
            before=losses.ROLLUP_SOURCE.format(grain="hour", ids="ARRAY(SELECT meter_id FROM quiet)",
                                               start="hours_start", end="day_start"))
        out = {}
        for row in session.execute(text(statement), {
                "ids": list(meter_ids), "history_start": history_start, "day_start": day_start,
                "day_end": day_end, "hours_start": hours_start, "zone": getattr(tz, "key", "UTC")}):
            today = Decimal(row.today) if row.today is not None else Decimal(0)
            out[row.meter_id] = MeterInputs(
                consumption=today, readings=int(row.today_readings or 0), history_days=int(row.history_days or 0),
                mean=None if row.mean is None else float(row.mean), sd=None if row.sd is None else float(row.sd),
                zero_hours=int(row.zero_hours or 0), negative=today < 0 or bool(row.negative_hour))
        return out
    daily: dict[int, dict[datetime, tuple[Decimal, int]]] = defaultdict(dict)
    for meter_id, start, consumption, readings in losses.rollup_rows(session, "day", meter_ids, history_start,
                                                                      day_end, tz):
        daily[meter_id][_utc(start)] = (Decimal(consumption), readings)
    hourly: dict[int, list[tuple[datetime, Decimal, int]]] = defaultdict(list)
    for meter_id, start, consumption, readings in losses.rollup_rows(session, "hour", meter_ids, hours_start,
                                                                      day_end, tz):
        hourly[meter_id].append((_utc(start), Decimal(consumption), readings))
    out = {}
    for meter_id in set(daily) | set(hourly):
        today = daily[meter_id].get(day_start, (Decimal(0), 0))
        days, mean, sd = history_stats(value for start, (value, readings) in sorted(daily[meter_id].items())
                                       if start < day_start and readings > 0)
        hours = hourly[meter_id]
        out[meter_id] = MeterInputs(
            consumption=today[0], readings=today[1], history_days=days, mean=mean, sd=sd,
            zero_hours=_trailing_zero_hours(hours),
            negative=today[0] < 0 or any(c < 0 for start, c, _n in hours if start >= day_start))
    return out


@dataclass(frozen=True)
class ScoredMeter:
    """One meter's stored score on a day (what `score_estate` returns)."""

    meter_id: int
    unit_id: int | None
    day: date
    score: int
    parts: list
    consumption: Decimal


def score_estate(session: Session, estate: Estate, day: date, *, open_cases: bool = True) -> list[ScoredMeter]:
    """Score every attached unit meter of the estate on a local day and store it; the caller commits."""
    meters = session.execute(
        select(Meter.id, Meter.unit_id, Meter.bidirectional, Meter.utility, Unit.occupancy_status)
        .join(Unit, Unit.id == Meter.unit_id)
        .where(Meter.estate_id == estate.id, Meter.role == "unit", Meter.detached_at.is_(None),
               Meter.utility.in_(PRICED_UTILITIES))).all()
    if not meters:
        return []
    inputs = anomaly_inputs(session, [m.id for m in meters], day, estate.tz)
    purchases = _monthly_purchases(session, estate, day)
    stored = []
    none = MeterInputs()
    for meter in meters:
        got = inputs.get(meter.id, none)
        last_month, average = purchases.get((meter.unit_id, meter.utility), (None, None))
        facts = MeterDay(consumption=got.consumption, history=(), zero_hours=got.zero_hours, negative=got.negative,
                         bidirectional=meter.bidirectional, occupied=meter.occupancy_status == "occupied",
                         purchases_last_month=last_month, purchases_average=average,
                         history_stats=(got.history_days, got.mean, got.sd))
        if got.readings == 0 and facts.zero_hours == 0:
            score, parts = 0, []  # no readings that day: offline, which meter watch reports
        else:
            score, parts = score_meter(facts)
        stored.append(ScoredMeter(meter.id, meter.unit_id, day, score, parts, got.consumption))
    _store_scores(session, estate, day, stored)
    if open_cases:
        _open_cases(session, estate, day, stored)
    return stored


_UPSERT_SCORES = text(
    "INSERT INTO meter_anomalies (estate_id, meter_id, unit_id, day, score, consumption, parts, computed_at)"
    " SELECT :estate_id, t.m, t.u, :day, t.s, t.c, t.p, :now"
    " FROM json_to_recordset(CAST(:rows AS json)) AS t(m integer, u integer, s integer, c numeric, p json)"
    " ON CONFLICT (meter_id, day) DO UPDATE SET estate_id = excluded.estate_id, unit_id = excluded.unit_id,"
    " score = excluded.score, consumption = excluded.consumption, parts = excluded.parts,"
    " computed_at = excluded.computed_at")


def _store_scores(session: Session, estate: Estate, day: date, scored: list[ScoredMeter]) -> None:
    """Insert or overwrite the day's row of each meter in one statement, not one statement per row."""
    now, dialect = utcnow(), session.get_bind().dialect
    if dialect.name == "postgresql":  # one JSON document of rows: one parameter, the statement prepared once
        rows = json.dumps([{"m": r.meter_id, "u": r.unit_id, "s": r.score, "c": str(r.consumption), "p": r.parts}
                           for r in scored], default=str)
        session.execute(_UPSERT_SCORES, {"estate_id": estate.id, "day": day, "now": now, "rows": rows})
    else:
        from sqlalchemy.dialects.sqlite import insert

        statement = insert(MeterAnomaly)
        session.execute(statement.on_conflict_do_update(
            index_elements=["meter_id", "day"],
            set_={name: statement.excluded[name]
                  for name in ("estate_id", "unit_id", "score", "parts", "consumption", "computed_at")}), [
            {"estate_id": estate.id, "meter_id": row.meter_id, "unit_id": row.unit_id, "day": day,
             "score": row.score, "parts": row.parts, "consumption": row.consumption, "computed_at": now}
            for row in scored])
    for instance in list(session.identity_map.values()):  # rows this session loaded before are stale now
        loaded = vars(instance)
        if isinstance(instance, MeterAnomaly) and loaded.get("estate_id") == estate.id and loaded.get("day") == day:
            session.expire(instance)


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


def _open_cases(session: Session, estate: Estate, day: date, rows: list[ScoredMeter]) -> int:
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
