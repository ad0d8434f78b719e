"""Shared solar (Quantify 11.2): an estate's solar generation shared among its units each month.

The estate's solar meters (role "solar") measure what its panels generated in a local month. That
generation is shared among the units with electricity use that month: equally, by floor area, or
by a custom table of weights (`SolarScheme`). A unit is never given more than it used: a share over
the unit's use is capped there and the rest shared again among the others; what nobody used is
reported as surplus and not charged.

Priced at the solar rate, as a monthly credit against the grid charge
- The live billing path prices every reading of a unit meter at the grid tariff as it arrives
  (C6). Taking solar out "before" that would change the live path, so the month's allocation is
  posted afterwards as one transaction per unit that (a) gives back the grid charge those kWh
  paid (kWh x the unit's grid rate: its tariff class's flat rate, or the time-of-use default
  rate, in force on the month's 1st) and (b) charges them at the estate's Solar tariff rate. Legs:
  the unit's electricity pocket +(grid credit - solar amount), electricity revenue -grid credit,
  solar revenue +solar amount.
- Exact splits: the kWh are split to the watt-hour and the solar value (generation shared x
  solar rate, in the currency's minor units) is split over the units' kWh by the same
  largest-remainder rule the levies use (`app.billing.levies.allocate`), so the shares add up to
  the totals exactly.
- Keys `solar:<estate>:<period>:<run>:<unit>`: a re-run of a posted month posts nothing; a month
  reversed (`reverse_allocation`) may be allocated again under the next run number.
- Estates whose wallets hold kWh (units denomination) are refused: their pockets are charged in
  kWh, not at a price, so there is no grid charge to give back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.billing import tariffs
from app.billing.levies import allocate
from app.ledger import Entry, LedgerError, PeriodClosed, PeriodLocked, post_many, reverse
from app.ledger.accounts import open_wallet, system_account
from app.models import ConsumptionRollup, Estate, Meter, Unit, utcnow
from app.models.utility import SOLAR_METHODS, SolarAllocation, SolarScheme
from app.money import format_amount, quantize
from app.jobs import enqueue, job
from app.periods import InvalidPeriod, checked_period, current_period, first_day, last_complete_period, month_bounds
from app.sql_arrays import one_of

METHOD_LABELS = {"equal": "Equally among the units", "floor_area": "By floor area",
                 "custom": "By a custom table of weights"}
KWH = "KWH"


class SolarError(ValueError):
    """The scheme cannot be saved or the month allocated as asked; nothing was written."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- the scheme ---------------------------------------------------------------------------


def scheme_of(session: Session, estate: Estate) -> SolarScheme | None:
    return session.scalar(select(SolarScheme).where(SolarScheme.estate_id == estate.id))


def custom_text(session: Session, scheme: SolarScheme | None) -> str:
    """The custom table as the form shows it: `unit,weight` lines in unit-number order."""
    if scheme is None or not scheme.custom_weights:
        return ""
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(
        Unit.id.in_([int(k) for k in scheme.custom_weights]))).all())
    return "\n".join(f"{numbers[int(k)]},{v}" for k, v in sorted(scheme.custom_weights.items(),
                                                                 key=lambda kv: numbers.get(int(kv[0]), "")))


def _parse_weights(text: str, units: dict[str, Unit]) -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip() or line.strip().lower().startswith("unit"):
            continue
        parts = [p.strip() for p in line.replace(";", ",").replace("\t", ",").split(",")]
        if len(parts) < 2:
            problems.append(str(_l("Line %(n)s: write the unit and its weight, like “A01,2”.", n=number)))
            continue
        unit = units.get(parts[0])
        if unit is None:
            problems.append(str(_l("Line %(n)s: no unit %(unit)s in this estate.", n=number, unit=repr(parts[0])[:40])))
            continue
        try:
            weight = Decimal(parts[1])
            if not weight.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.append(str(_l("Line %(n)s: the weight must be a number.", n=number)))
            continue
        if weight <= 0 or weight > Decimal("1000000") or weight != weight.quantize(Decimal("0.000001")):
            problems.append(str(_l("Line %(n)s: the weight must be more than 0 and at most 1,000,000 "
                                   "(six decimals at most).", n=number)))
        elif str(unit.id) in found:
            problems.append(str(_l("Line %(n)s: unit %(unit)s is listed twice.", n=number, unit=unit.number)))
        else:
            found[str(unit.id)] = str(weight)
    if not found and not problems:
        problems.append(str(_l("List each unit and its weight, one per line: “A01,2”.")))
    return found, problems


def save_scheme(session: Session, estate: Estate, form: dict, *, user_id: int | None = None) -> SolarScheme:
    """Set how the estate shares its solar, audited; commits once. SolarError says what is wrong."""
    method = (form.get("method") or "").strip()
    errors: dict[str, str] = {}
    weights = None
    if method not in SOLAR_METHODS:
        errors["method"] = str(_l("Choose equally, by floor area or by a custom table."))
    elif method == "custom":
        units = {u.number: u for u in session.scalars(select(Unit).where(Unit.estate_id == estate.id))}
        weights, problems = _parse_weights(form.get("custom_weights", ""), units)
        if problems:
            errors["custom_weights"] = " ".join(problems[:5])
    if errors:
        raise SolarError(errors)
    scheme = scheme_of(session, estate)
    old = {"method": scheme.method, "custom_weights": scheme.custom_weights} if scheme else None
    if scheme is None:
        scheme = SolarScheme(estate_id=estate.id)
        session.add(scheme)
    scheme.method = method
    scheme.custom_weights = weights if method == "custom" else (scheme.custom_weights if scheme.id else None)
    scheme.updated_at = utcnow()
    session.flush()
    audit.record(session, "solar_scheme.saved", scheme, old=old,
                 new={"method": scheme.method, "custom_weights": scheme.custom_weights}, estate_id=estate.id)
    session.commit()
    return scheme


# --- the split ----------------------------------------------------------------------------


def share_capped(total: Decimal, weights: list[tuple[object, Decimal]], caps: dict[object, Decimal]
                 ) -> tuple[dict[object, Decimal], Decimal]:
    """Split `total` kWh by weight to the watt-hour, no key above its cap; (shares, surplus).

    Keys whose share would pass their cap get the cap; the rest is shared again among the others
    by their weights, until every share fits. The shares plus the surplus add up to `total`.
    """
    shares: dict[object, Decimal] = {key: Decimal("0.000") for key, _ in weights}
    remaining = quantize(total, KWH)
    active = [(k, w) for k, w in weights if w > 0 and caps.get(k, Decimal(0)) > 0]
    while active and remaining > 0:
        tentative = {key: share for key, share, _ in allocate(remaining, active, KWH)}
        over = [k for k, _ in active if tentative[k] > caps[k] - shares[k]]
        if not over:
            for key, share in tentative.items():
                shares[key] += share
            remaining = Decimal("0.000")
            break
        for key in over:
            remaining -= caps[key] - shares[key]
            shares[key] = caps[key]
        active = [(k, w) for k, w in active if k not in over]
    return shares, remaining


@dataclass
class AllocationRow:
    unit_id: int
    unit_number: str
    weight: Decimal
    used: Decimal
    kwh: Decimal
    grid_rate: Decimal | None
    grid_credit: Decimal
    solar_amount: Decimal
    status: str = "new"  # new | posted | already | left out
    reason: str = ""

    @property
    def net(self) -> Decimal:
        """What the unit's pocket gains: the grid charge given back less the solar charge."""
        return self.grid_credit - self.solar_amount


@dataclass
class AllocationReport:
    estate_code: str
    period: str
    method: str
    run: int
    dry_run: bool
    generation: Decimal = Decimal(0)
    solar_rate: Decimal | None = None
    solar_value: Decimal = Decimal(0)
    surplus: Decimal = Decimal(0)
    rows: list[AllocationRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def allocated(self) -> Decimal:
        return sum((r.kwh for r in self.rows), Decimal(0))

    @property
    def grid_credit(self) -> Decimal:
        return sum((r.grid_credit for r in self.rows), Decimal(0))

    @property
    def solar_amount(self) -> Decimal:
        return sum((r.solar_amount for r in self.rows), Decimal(0))


def _month_sum(session: Session, meter_ids: list[int], start: datetime) -> dict[int, Decimal]:
    if not meter_ids:
        return {}
    return {m: Decimal(v or 0) for m, v in session.execute(
        select(ConsumptionRollup.meter_id, func.sum(ConsumptionRollup.consumption))
        .where(ConsumptionRollup.grain == "month", one_of(session, ConsumptionRollup.meter_id, meter_ids),
               ConsumptionRollup.period_start == start).group_by(ConsumptionRollup.meter_id))}


def _rate(prices, day) -> Decimal | None:
    return tariffs.unit_price(tariffs.price_on(prices, day))


def check_month(estate: Estate, period: str, now: datetime | None = None) -> str:
    try:
        period = checked_period(period)
    except InvalidPeriod as error:
        raise SolarError({"period": str(error)}) from None
    if period >= current_period(estate.tz, now or utcnow()):
        raise SolarError({"period": str(_l("Only a month that has ended can be allocated."))})
    return period


def latest_runs(session: Session, estate: Estate, period: str) -> tuple[int, list[SolarAllocation]]:
    """The highest run number of the month and its rows."""
    run = session.scalar(select(func.max(SolarAllocation.run)).where(
        SolarAllocation.estate_id == estate.id, SolarAllocation.period == period)) or 0
    rows = list(session.scalars(select(SolarAllocation).where(
        SolarAllocation.estate_id == estate.id, SolarAllocation.period == period, SolarAllocation.run == run)))
    return run, rows


def plan_allocation(session: Session, estate: Estate, period: str, *, now: datetime | None = None) -> AllocationReport:
    """The month's allocation as it would be posted (or as it was, when the latest run is posted)."""
    period = check_month(estate, period, now)
    if estate.wallet_denomination == "units":
        raise SolarError({"period": str(_l("This estate's wallets hold kWh, not money: shared solar is priced "
                                           "in money and cannot be allocated here."))})
    scheme = scheme_of(session, estate)
    method = scheme.method if scheme else "equal"
    run, existing = latest_runs(session, estate, period)
    live = [r for r in existing if r.status == "posted"]
    report = AllocationReport(estate.code, period, method, run if live else run + 1, dry_run=True)
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)).all())
    if live:  # already allocated: report what was posted
        report.method = live[0].method
        report.generation, report.solar_rate = Decimal(live[0].generation), Decimal(live[0].solar_rate)
        for r in sorted(live, key=lambda r: numbers.get(r.unit_id, "")):
            report.rows.append(AllocationRow(r.unit_id, numbers.get(r.unit_id, ""), Decimal(r.weight), Decimal(r.used),
                                             Decimal(r.kwh), Decimal(r.grid_rate), Decimal(r.grid_credit),
                                             Decimal(r.solar_amount), "already"))
        report.solar_value = report.solar_amount
        report.surplus = report.generation - report.allocated
        return report

    start, _ = month_bounds(period, estate.timezone)
    day = first_day(period)
    meters = session.execute(select(Meter.id, Meter.role, Meter.unit_id).where(
        Meter.estate_id == estate.id, Meter.role.in_(("solar", "unit")),
        Meter.utility.in_(("solar", "electricity")))).all()
    sums = _month_sum(session, [m for m, _, _ in meters], start)
    report.generation = quantize(sum((max(sums.get(m, Decimal(0)), Decimal(0)) for m, role, _ in meters
                                      if role == "solar"), Decimal(0)), KWH)
    used: dict[int, Decimal] = {}
    for meter_id, role, unit_id in meters:
        if role == "unit" and unit_id is not None:
            used[unit_id] = used.get(unit_id, Decimal(0)) + sums.get(meter_id, Decimal(0))
    prices = tariffs.class_prices(session, {estate.id})
    report.solar_rate = _rate(tariffs.prices_for(prices, estate.id, "solar", None), day)
    if report.generation <= 0:
        report.problems.append(str(_l("The estate's solar meters generated nothing in %(period)s.", period=period)))
    if report.solar_rate is None:
        report.problems.append(str(_l("The estate has no Solar tariff with a flat rate in force on %(day)s: "
                                      "add one on the tariffs page.", day=day.strftime("%d %b %Y"))))
    # Plain rows, not ORM units: hundreds of tracked objects per page view set off full garbage collections.
    units = [u for u in session.execute(select(Unit.id, Unit.number, Unit.floor_area_m2)
                                        .where(Unit.estate_id == estate.id).order_by(Unit.number))
             if u.id in used]
    classes = tariffs.unit_class_keys(session, {u.id for u in units})
    weights: list[tuple[int, Decimal]] = []
    rows: dict[int, AllocationRow] = {}
    for unit in units:
        grid = _rate(tariffs.prices_for(prices, estate.id, "electricity", classes.get(unit.id)), day)
        if method == "floor_area":
            weight = Decimal(unit.floor_area_m2 or 0)
        elif method == "custom":
            weight = Decimal(str((scheme.custom_weights or {}).get(str(unit.id), 0)))
        else:
            weight = Decimal(1)
        row = AllocationRow(unit.id, unit.number, weight, quantize(max(used[unit.id], Decimal(0)), KWH), Decimal(0),
                            grid, Decimal(0), Decimal(0))
        rows[unit.id] = row
        if row.used <= 0:
            row.status, row.reason = "left out", str(_l("no electricity use this month"))
        elif weight <= 0:
            row.status, row.reason = "left out", (str(_l("no floor area recorded")) if method == "floor_area"
                                                  else str(_l("not in the custom table")))
        elif grid is None:
            row.status, row.reason = "left out", str(_l("its electricity tariff has no single rate (blocks or none)"))
        else:
            weights.append((unit.id, weight))
    report.rows = list(rows.values())
    if report.problems or not weights:
        if not weights and not report.problems:
            report.problems.append(str(_l("No unit can take a share this month.")))
        return report
    shares, report.surplus = share_capped(report.generation, weights, {k: rows[k].used for k, _ in weights})
    report.solar_value = quantize(sum(shares.values(), Decimal(0)) * report.solar_rate, estate.currency)
    given = [(k, shares[k]) for k, _ in weights if shares[k] > 0]
    for key, amount, _ in allocate(report.solar_value, given, estate.currency) if report.solar_value > 0 else []:
        rows[key].solar_amount = amount
    for key, _ in weights:
        row = rows[key]
        row.kwh = shares[key]
        row.grid_credit = quantize(row.kwh * row.grid_rate, estate.currency)
    return report


def run_allocation(session: Session, estate: Estate, period: str, *, dry_run: bool = False,
                   user_id: int | None = None, now: datetime | None = None) -> AllocationReport:
    """Allocate the month's solar and post one transaction per unit; commits once (dry: writes nothing)."""
    report = plan_allocation(session, estate, period, now=now)
    report.dry_run = dry_run
    if dry_run or report.problems or any(r.status == "already" for r in report.rows):
        return report
    wanted = [r for r in report.rows if r.status == "new" and r.kwh > 0]
    if not wanted:
        return report
    pockets = {}
    for row in wanted:
        wallet = open_wallet(session, session.get(Unit, row.unit_id), ("electricity",))
        pockets[row.unit_id] = next(p for p in wallet.pockets if p.utility == "electricity")
    grid_revenue = system_account(session, estate, "revenue", "electricity", utility="electricity")
    solar_revenue = system_account(session, estate, "revenue", "solar", utility="solar")
    _, end = month_bounds(report.period, estate.timezone)
    at = end - timedelta(seconds=1)  # the month's last moment: the credit belongs to the month
    entries = []
    for row in wanted:
        legs = [(pockets[row.unit_id].id, row.net), (grid_revenue.id, -row.grid_credit), (solar_revenue.id, row.solar_amount)]
        entries.append(Entry(
            estate_id=estate.id, kind="solar_allocation",
            idempotency_key=f"solar:{estate.id}:{report.period}:{report.run}:{row.unit_id}",
            legs=[(a, v) for a, v in legs if v != 0], occurred_at=at, created_by_user_id=user_id,
            memo=share_text(row, report, estate)))
    try:
        posted = post_many(session, [e for e in entries if len(e.legs) >= 2])
    except (PeriodClosed, PeriodLocked):
        session.rollback()
        raise SolarError({"period": str(_l("%(period)s is closed (or locked) in the ledger: allocate a month's solar "
                                           "before it is closed.", period=report.period))}) from None
    except LedgerError as error:
        session.rollback()
        raise SolarError({"period": str(error)}) from None
    by_key = dict(zip([e.idempotency_key for e in entries if len(e.legs) >= 2], posted))
    for row, entry in zip(wanted, entries):
        result = by_key.get(entry.idempotency_key)
        session.add(SolarAllocation(
            estate_id=estate.id, period=report.period, run=report.run, unit_id=row.unit_id, method=report.method,
            weight=row.weight, generation=report.generation, used=row.used, kwh=row.kwh,
            solar_rate=report.solar_rate, grid_rate=row.grid_rate, solar_amount=row.solar_amount,
            grid_credit=row.grid_credit, transaction_id=result.transaction_id if result else None, status="posted"))
        row.status = "posted"
    audit.record(session, "solar.allocated", f"solar:{estate.code}:{report.period}:{report.run}",
                 new={"generation": str(report.generation), "allocated": str(report.allocated),
                      "solar_value": str(report.solar_value), "grid_credit": str(report.grid_credit),
                      "units": len(wanted)}, estate_id=estate.id)
    from app.metering.credit_control import after_pocket_change
    after_pocket_change(session, [p.id for p in pockets.values()])  # a net charge may empty a pocket
    session.commit()
    return report


def allocate_before_billing(session: Session, estate: Estate, period: str, *, user_id: int | None = None,
                            now: datetime | None = None) -> None:
    """Allocate an ended month's solar, if the estate has a scheme and the month is not allocated yet,
    before anything reads the month's electricity charges: the statement run (so a month's statement
    shows its solar credit) and the settlement run (so electricity revenue is settled net of the grid
    charge given back), whatever order the jobs run in. A month already allocated posts nothing; one
    the allocation refuses (kWh wallets, no generation, a closed period) is left as it stands."""
    if scheme_of(session, estate) is None:
        return
    try:
        run_allocation(session, estate, period, user_id=user_id, now=now)
    except SolarError:  # refused before anything was written (or rolled back by the allocation itself)
        pass


def summary(report: AllocationReport, currency: str) -> str:
    """One line on the month's run, for the command line and the scheduled job's result."""
    already = sum(1 for r in report.rows if r.status == "already")
    head = f"{report.estate_code} {report.period} shared solar ({report.method}, run {report.run}): "
    if report.problems:
        return head + "nothing allocated"
    if already:
        return head + f"already allocated to {already} units; nothing posted"
    state = "would post" if report.dry_run else "posted"
    units = sum(1 for r in report.rows if r.status in ("new", "posted") and r.kwh > 0)
    return head + (f"{format_amount(report.allocated, KWH)} of {format_amount(report.generation, KWH)} to "
                   f"{units} units, {state} "
                   f"{format_amount(report.solar_amount, currency)} at the solar rate, grid charge given back "
                   f"{format_amount(report.grid_credit, currency)}; surplus {format_amount(report.surplus, KWH)}")


# --- the monthly run (job_schedule: the 2nd of each month) -----------------------------------

JOB_KIND = "solar_allocation"


def job_target(estate: Estate, period: str) -> str:
    return f"{estate.code}:{period}"


@job(JOB_KIND)
def solar_allocation_job(session: Session, progress, estate_id: int, period: str) -> str:
    """Allocate an estate's month of solar; a month already allocated posts nothing; refusals are
    the run's errors (the job itself succeeds: a month without generation is not a failure)."""
    estate = session.get(Estate, estate_id)
    if estate is None:
        raise ValueError(f"estate {estate_id} does not exist")
    try:
        report = run_allocation(session, estate, period)
    except SolarError as error:
        session.rollback()
        progress.error(str(error))
        return f"{estate.code} {period} shared solar: refused ({error})"
    for problem in report.problems:
        progress.error(problem)
    return summary(report, estate.currency)


def schedule_solar_allocations(session: Session, now: datetime | None = None) -> list[str]:
    """For the 2nd: allocate last month's solar in every estate with a sharing scheme (its
    shared solar configured on the utility solar page); estates already allocated post nothing."""
    started = []
    for estate in session.scalars(select(Estate).where(Estate.id.in_(select(SolarScheme.estate_id)))
                                  .order_by(Estate.id)):
        period = last_complete_period(estate.tz, now or utcnow())
        enqueue(JOB_KIND, estate.id, period, target=job_target(estate, period), queue="low")
        started.append(job_target(estate, period))
    return started


def reverse_allocation(session: Session, estate: Estate, period: str, *, user_id: int | None = None) -> int:
    """Reverse the month's posted run (so it may be allocated again); commits once. Returns rows reversed."""
    run, rows = latest_runs(session, estate, period)
    live = [r for r in rows if r.status == "posted"]
    if not live:
        raise SolarError({"period": str(_l("Nothing is allocated in %(period)s to reverse.", period=period))})
    for row in live:
        if row.transaction_id is not None:
            reverse(session, row.transaction_id, memo=f"Shared solar {period} run {run} reversed",
                    created_by_user_id=user_id)
        row.status = "reversed"
    audit.record(session, "solar.reversed", f"solar:{estate.code}:{period}:{run}", new={"units": len(live)},
                 estate_id=estate.id)
    session.commit()
    return len(live)


def share_text(row: AllocationRow, report: AllocationReport, estate: Estate) -> str:
    """The unit's share in words, as its explanation and the ledger memo say it."""
    method = {"equal": "an equal share", "floor_area": f"floor area {row.weight} m²",
              "custom": f"weight {row.weight}"}[report.method]
    return (f"Shared solar {report.period}: {format_amount(row.kwh, KWH)} of {format_amount(report.generation, KWH)} "
            f"({method}; used {format_amount(row.used, KWH)}) at {format_amount(report.solar_rate, estate.currency)}/kWh "
            f"= {format_amount(row.solar_amount, estate.currency)}, grid charge given back "
            f"{format_amount(row.grid_credit, estate.currency)}")[:500]


def allocations_of(session: Session, estate: Estate, limit: int = 24) -> list[tuple[str, int, int, Decimal, Decimal, Decimal, str]]:
    """(period, run, units, kWh, solar amount, grid credit, status) per month and run, newest first."""
    rows = session.execute(
        select(SolarAllocation.period, SolarAllocation.run, func.count(), func.sum(SolarAllocation.kwh),
               func.sum(SolarAllocation.solar_amount), func.sum(SolarAllocation.grid_credit),
               func.min(SolarAllocation.status))
        .where(SolarAllocation.estate_id == estate.id)
        .group_by(SolarAllocation.period, SolarAllocation.run)
        .order_by(SolarAllocation.period.desc(), SolarAllocation.run.desc()).limit(limit)).all()
    return [tuple(r) for r in rows]


def explain_share(session: Session, transaction_id: int, estate: Estate) -> str:
    """The unit's share of the month as its transaction's explanation says it."""
    row = session.scalar(select(SolarAllocation).where(SolarAllocation.transaction_id == transaction_id))
    if row is None:
        return ""
    number = session.scalar(select(Unit.number).where(Unit.id == row.unit_id)) or ""
    report = AllocationReport(estate.code, row.period, row.method, row.run, False, Decimal(row.generation),
                              Decimal(row.solar_rate))
    share = AllocationRow(row.unit_id, number, Decimal(row.weight), Decimal(row.used), Decimal(row.kwh),
                          Decimal(row.grid_rate), Decimal(row.grid_credit), Decimal(row.solar_amount))
    units = session.scalar(select(func.count()).where(
        SolarAllocation.estate_id == row.estate_id, SolarAllocation.period == row.period,
        SolarAllocation.run == row.run))
    return (share_text(share, report, estate) + ". " +
            str(_l("The estate's solar generation of the month is shared among %(n)s units (%(method)s), never "
                   "more than a unit used; its kWh had been billed at the grid rate as they were used, so that "
                   "charge is given back and the solar rate charged instead.",
                   n=units, method=str(_l(METHOD_LABELS[row.method])).lower())))

