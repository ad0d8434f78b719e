"""Body-corporate levies (B3): definitions, the exact split over units, and the monthly levy run.

How a levy reaches an owner
- A definition's total is split over its units in minor units by the largest-remainder
  method: each unit gets the whole cents of its exact share, and the cents left over go one
  each to the units with the largest fractions, ties to the first units in unit-number order.
  So the shares always add up to the total (`allocate`). Custom levies name each unit's amount.
- A run for a month posts each due unit's share from the owner's levy pocket
  (`owner_pocket(unit, "levy")`, never the tenant's wallet) to the scheme's levy income, key
  `levy:<definition>:<unit>:<period>:<run>`; a `LevyCharge` row remembers it, so a re-run
  posts nothing. A reversed charge may be charged again under the next run number.
- With `levies_auto_deduct` on the charge is taken from what the owner prepaid into the
  pocket; a shortfall is unpaid at once and becomes an arrears record on the owner. With it
  off the charge is an invoice: the pocket shows it owed until the owner pays; whatever is
  still owed when the next month's run starts becomes an arrears record.
- A levy payment goes into the levy pocket through `credit_payment()` and pays the unit's
  open levy arrears first, oldest first (`record_levy_payment`).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.billing.arrears import ArrearsError, open_arrears, open_records, pay_arrears
from app.jobs import enqueue, job
from app.ledger import Entry, LedgerError, post_many
from app.ledger.accounts import owner_pocket, system_account
from app.models import Account, Estate, FinancialPeriod, Person, Unit, UnitOwnership, utcnow
from app.models.arrears import ArrearsRecord
from app.models.levies import LEVY_ALLOCATIONS, LEVY_FREQUENCIES, LevyCharge, LevyDefinition
from app.money import MoneyError, format_amount, minor_units, parse_amount, quantize
from app.sql_arrays import insert_rows
from app.periods import (InvalidPeriod, checked_period, current_period, first_day, month_bounds,
                         parse_period)
from app.routing import whole_number

log = logging.getLogger(__name__)
JOB_KIND = "levy_run"
BATCH = 2000  # charges per post_many call
REMAINDER_RULE = _l("Cents left over after the exact split go one each to the units with the largest "
                  "fraction of a cent; ties go to the first units in unit-number order.")
FREQUENCY_LABELS = {"monthly": _l("Monthly"), "quarterly": _l("Quarterly"), "annual": _l("Annual")}
ALLOCATION_LABELS = {"equal": _l("Equal per unit"), "floor_area": _l("By floor area (participation quota)"),
                     "custom": _l("Custom amount per unit")}


class LevyError(ValueError):
    """The levy cannot be saved or run as asked; nothing was written. `errors` is keyed by field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class LevyRunRefused(LevyError):
    """The month cannot take levy charges (locked, closed or not yet begun)."""

    def __init__(self, message: str):
        super().__init__({"month": message})


# --- the split ---------------------------------------------------------------------------


def allocate(total: Decimal, weights: list[tuple[object, Decimal]], currency: str) -> list[tuple[object, Decimal, bool]]:
    """Split `total` over (key, weight) exactly in minor units; return (key, share, got a remainder cent).

    Largest remainder in whole numbers: the weights are scaled to integers by one power of ten, so
    each exact share is cents x weight / sum of weights; the floors are handed out and the cents
    left go to the largest remainders (earlier keys first on a tie). Integer arithmetic, not
    fractions: shared solar splits over hundreds of units on every page view.
    """
    if not weights:
        return []
    places = minor_units(currency)
    scale = 10 ** places
    cents = int(quantize(total, currency) * scale)
    values = [w if isinstance(w, Decimal) else Decimal(w) for _, w in weights]
    if not all(v.is_finite() for v in values):
        raise ValueError("a weight is not a number")
    shift = max(0, *(-v.as_tuple().exponent for v in values))
    whole_numbers = []
    for value in values:  # exactly: the digits times a power of ten (no rounding to a precision)
        sign, digits, exponent = value.as_tuple()
        number = int("".join(map(str, digits)) or "0") * 10 ** (exponent + shift)
        whole_numbers.append(-number if sign else number)
    whole = sum(whole_numbers)
    if whole <= 0:
        raise ValueError("the weights add up to nothing")
    floors, remainders = [], []
    for weight in whole_numbers:
        floor, remainder = divmod(cents * weight, whole)
        floors.append(floor)
        remainders.append(remainder)
    left = cents - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    extra = set(order[:left])
    unit = Decimal(1).scaleb(-places)
    return [(key, (Decimal(floors[i] + (1 if i in extra else 0)) / scale).quantize(unit), i in extra)
            for i, (key, _) in enumerate(weights)]


@dataclass
class ShareRow:
    unit_id: int
    unit_number: str
    weight: Decimal | None
    share: Decimal
    got_remainder: bool


def _definition_units(session: Session, estate: Estate, unit_ids: list[int] | None) -> list[Unit]:
    query = select(Unit).where(Unit.estate_id == estate.id)
    if unit_ids is not None:
        query = query.where(Unit.id.in_(unit_ids))
    return list(session.scalars(query.order_by(Unit.number)))


def shares_of(session: Session, estate: Estate, definition: LevyDefinition,
              units: list[Unit] | None = None) -> list[ShareRow]:
    """Each unit's share of one charge of the levy, in unit-number order (adds up to the total)."""
    if units is None:
        units = _definition_units(session, estate, definition.unit_ids)
    if definition.allocation == "custom":
        amounts = definition.custom_amounts or {}
        return [ShareRow(u.id, u.number, None, quantize(Decimal(str(amounts[str(u.id)])), estate.currency), False)
                for u in units if str(u.id) in amounts]
    if definition.allocation == "floor_area":
        weights = [(u, u.floor_area_m2) for u in units]
    else:
        weights = [(u, Decimal(1)) for u in units]
    return [ShareRow(u.id, u.number, w if definition.allocation == "floor_area" else None, share, extra)
            for (u, share, extra), (_, w) in zip(allocate(definition.amount, weights, estate.currency), weights)]


# --- definitions -------------------------------------------------------------------------


def charged_in(definition: LevyDefinition, period: str) -> bool:
    """Whether the levy is charged in this month: inside its dates, and one of its months."""
    if period < definition.effective_from or (definition.effective_to and period > definition.effective_to):
        return False
    _, month = parse_period(period)
    if definition.frequency == "quarterly":
        return (month - (definition.charge_month or 1)) % 3 == 0
    if definition.frequency == "annual":
        return month == definition.charge_month
    return True


def charge_months_text(definition: LevyDefinition) -> str:
    """'Every month', 'Mar, Jun, Sep, Dec', 'Every July'."""
    from app.i18n.formatting import local_date  # month names in the reader's language

    names = [local_date(date(2000, m, 1), "%b") for m in range(1, 13)]
    if definition.frequency == "quarterly":
        first = ((definition.charge_month or 1) - 1) % 3
        return ", ".join(names[m] for m in range(first, 12, 3))
    if definition.frequency == "annual":
        return gettext("Every %(month)s", month=names[(definition.charge_month or 1) - 1])
    return gettext("Every month")


def blank_form(estate: Estate, period: str | None = None) -> dict:
    return {"name": "", "amount": "", "frequency": "monthly", "charge_month": "", "allocation": "equal",
            "effective_from": period or current_period(estate.tz), "effective_to": "", "units": "all",
            "unit_ids": [], "custom": ""}


def form_of(session: Session, definition: LevyDefinition) -> dict:
    """The edit form's values for a saved definition."""
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == definition.estate_id)).all())
    custom = "\n".join(f"{numbers.get(int(k), k)},{v}" for k, v in (definition.custom_amounts or {}).items())
    return {"name": definition.name, "amount": str(quantize(definition.amount, _currency(session, definition))),
            "frequency": definition.frequency, "charge_month": str(definition.charge_month or ""),
            "allocation": definition.allocation, "effective_from": definition.effective_from,
            "effective_to": definition.effective_to or "",
            "units": "all" if definition.unit_ids is None else "some",
            "unit_ids": [str(i) for i in definition.unit_ids or []], "custom": custom}


def _currency(session: Session, definition: LevyDefinition) -> str:
    return session.get(Estate, definition.estate_id).currency


def build_definition(session: Session, estate: Estate, form: dict, *,
                     definition: LevyDefinition | None = None) -> tuple[LevyDefinition, list[ShareRow]]:
    """Check a levy form and return the (unsaved) definition and its shares; LevyError lists every problem."""
    errors: dict[str, str] = {}
    name = (form.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the levy a name, for example “Admin levy”."
    elif len(name) > 100:
        errors["name"] = "A levy name has at most 100 characters."
    else:
        clash = session.scalar(select(LevyDefinition.id).where(
            LevyDefinition.estate_id == estate.id, func.lower(LevyDefinition.name) == name.lower()))
        if clash is not None and (definition is None or clash != definition.id):
            errors["name"] = f"{estate.name} already has a levy called “{name}”."
    frequency = form.get("frequency") or ""
    if frequency not in LEVY_FREQUENCIES:
        errors["frequency"] = "Choose monthly, quarterly or annual."
    charge_month = None
    if frequency in ("quarterly", "annual"):
        charge_month = whole_number(form.get("charge_month"), 1, 12)
        if charge_month is None:
            errors["charge_month"] = "Choose the month the levy is charged in."
    allocation = form.get("allocation") or ""
    if allocation not in LEVY_ALLOCATIONS:
        errors["allocation"] = "Choose how the levy is split: equally, by floor area or a custom amount per unit."
    try:
        effective_from = checked_period((form.get("effective_from") or "").strip())
    except InvalidPeriod as error:
        errors["effective_from"], effective_from = f"First month: {error}.", ""
    effective_to = (form.get("effective_to") or "").strip() or None
    if effective_to is not None:
        try:
            effective_to = checked_period(effective_to)
            if effective_from and effective_to < effective_from:
                errors["effective_to"] = "The last month cannot come before the first."
        except InvalidPeriod as error:
            errors["effective_to"] = f"Last month: {error}."

    estate_units = {u.id: u for u in session.scalars(select(Unit).where(Unit.estate_id == estate.id))}
    unit_ids: list[int] | None = None
    if form.get("units") == "some":
        chosen = set()
        for raw in form.get("unit_ids") or []:
            if whole_number(str(raw)) in estate_units:
                chosen.add(int(raw))
        if not chosen:
            errors["units"] = "Tick the units the levy applies to (or choose every unit)."
        unit_ids = sorted(chosen)
    units = sorted((estate_units[i] for i in (unit_ids if unit_ids is not None else estate_units)),
                   key=lambda u: u.number)
    if not units and "units" not in errors:
        errors["units"] = f"{estate.name} has no units to charge yet."

    amount = Decimal("0")
    custom: dict[str, str] | None = None
    if allocation == "custom":
        custom, problems = _parse_custom(form.get("custom") or "", estate, {u.number: u for u in units})
        if problems:
            errors["custom"] = " ".join(problems)
        else:
            amount = sum((Decimal(v) for v in custom.values()), Decimal("0"))
            units = [u for u in units if str(u.id) in custom]
    else:
        try:
            amount = parse_amount(form.get("amount"), estate.currency)
            if amount <= 0:
                errors["amount"] = "A levy is for more than nothing."
        except MoneyError as error:
            errors["amount"] = f"Amount: {error}."
    if allocation == "floor_area" and units:
        missing = [u.number for u in units if not u.floor_area_m2 or u.floor_area_m2 <= 0]
        if missing:
            errors["allocation"] = (f"Units without a floor area cannot share by floor area: "
                                    f"{', '.join(missing[:20])}{' …' if len(missing) > 20 else ''}. "
                                    "Enter their floor areas on the estate's unit pages, or choose another split.")
    if errors:
        raise LevyError(errors)
    draft = definition or LevyDefinition(estate_id=estate.id)
    draft.name, draft.amount, draft.frequency, draft.charge_month = name, amount, frequency, charge_month
    draft.allocation, draft.effective_from, draft.effective_to = allocation, effective_from, effective_to
    draft.unit_ids, draft.custom_amounts = unit_ids, custom
    return draft, shares_of(session, estate, draft, units)


def _parse_custom(text: str, estate: Estate, units: dict[str, Unit]) -> tuple[dict[str, str], list[str]]:
    """Lines `unit,amount` (a pasted table or CSV) -> {unit id: amount}; problems per line."""
    found: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip().lower().startswith("unit"):
            continue
        parts = [p.strip() for p in line.replace(";", ",").replace("\t", ",").split(",")]
        if len(parts) < 2:
            problems.append(f"Line {number}: write the unit and its amount, like “A01,250.00”.")
            continue
        unit = units.get(parts[0])
        if unit is None:
            problems.append(f"Line {number}: no unit {parts[0]!r} among the levy's units.")
            continue
        try:
            value = parse_amount(parts[1], estate.currency)
        except MoneyError as error:
            problems.append(f"Line {number}: {error}.")
            continue
        if value <= 0:
            problems.append(f"Line {number}: the amount must be more than nothing.")
        elif str(unit.id) in found:
            problems.append(f"Line {number}: unit {unit.number} is listed twice.")
        else:
            found[str(unit.id)] = str(value)
    if not found and not problems:
        problems.append("List each unit and its amount, one per line: “A01,250.00”.")
    return found, problems


def save_definition(session: Session, estate: Estate, form: dict, *, definition: LevyDefinition | None = None,
                    user_id: int | None = None) -> LevyDefinition:
    """Create or change a levy definition, audited; commits once. LevyError lists every problem."""
    before = _audit_view(definition) if definition is not None else None
    saved, _ = build_definition(session, estate, form, definition=definition)
    saved.updated_at = utcnow()
    if definition is None:
        saved.created_by_user_id = user_id
        session.add(saved)
    session.flush()
    audit.record(session, "levy.created" if before is None else "levy.changed", saved,
                 old=before, new=_audit_view(saved), estate_id=estate.id)
    session.commit()
    return saved


def _audit_view(definition: LevyDefinition) -> dict:
    return {"name": definition.name, "amount": str(definition.amount), "frequency": definition.frequency,
            "charge_month": definition.charge_month, "allocation": definition.allocation,
            "effective_from": definition.effective_from, "effective_to": definition.effective_to,
            "unit_ids": definition.unit_ids, "custom_amounts": definition.custom_amounts}


def definitions_of(session: Session, estate: Estate) -> list[LevyDefinition]:
    return list(session.scalars(select(LevyDefinition).where(LevyDefinition.estate_id == estate.id)
                                .order_by(LevyDefinition.name)))


def definition_or_none(session: Session, estate: Estate, levy_id: int) -> LevyDefinition | None:
    found = session.get(LevyDefinition, levy_id) if 0 < levy_id < 2**31 else None
    return found if found is not None and found.estate_id == estate.id else None


# --- the run -----------------------------------------------------------------------------


@dataclass
class LevyRunReport:
    """What a run posted (or, dry, would post), per definition, and the arrears it opened."""

    estate_code: str
    period: str
    dry_run: bool
    charged: int = 0
    already: int = 0
    total: Decimal = Decimal("0")
    by_definition: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    arrears_opened: int = 0
    arrears_amount: Decimal = Decimal("0")
    problems: list[str] = field(default_factory=list)

    def summary(self, currency: str) -> str:
        verb = "would charge" if self.dry_run else "charged"
        parts = [f"{self.estate_code} {self.period}: {verb} {self.charged} unit levies "
                 f"({format_amount(self.total, currency)}); {self.already} already charged"]
        for name, (count, amount) in self.by_definition.items():
            parts.append(f"{name}: {count} charges, {format_amount(amount, currency)}")
        if self.arrears_opened:
            parts.append(f"{self.arrears_opened} unpaid levies became arrears "
                         f"({format_amount(self.arrears_amount, currency)})")
        return "; ".join(parts)


def check_run(session: Session, estate: Estate, period: str, now=None) -> str:
    """The month if levies may be charged in it, else LevyRunRefused with the reason."""
    try:
        period = checked_period(period)
    except InvalidPeriod as error:
        raise LevyRunRefused(str(error)) from None
    if period > current_period(estate.tz, now):
        raise LevyRunRefused(f"{period} has not begun in {estate.name}; levies are charged from the month's start.")
    status = session.scalar(select(FinancialPeriod.status).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period == period))
    if status == "locked":
        raise LevyRunRefused(f"{period} is locked: nothing may be posted into it. Levies for it were due "
                             "before it was locked; charge them in an open month instead.")
    if status == "closed":
        raise LevyRunRefused(f"{period} is closed: only corrections may be posted into it.")
    return period


def current_owners(session: Session, unit_ids: list[int], period: str) -> dict[int, int]:
    """unit id -> person id of its owner during the month (the largest share, then the longest held)."""
    start, end = first_day(period), first_day(period)
    _, last = month_bounds(period, "UTC")
    end = last.date()
    rows = session.execute(
        select(UnitOwnership.unit_id, UnitOwnership.person_id)
        .where(UnitOwnership.unit_id.in_(unit_ids), UnitOwnership.since < end,
               or_(UnitOwnership.until.is_(None), UnitOwnership.until >= start))
        .order_by(UnitOwnership.unit_id, UnitOwnership.share_percent.desc(), UnitOwnership.since,
                  UnitOwnership.id)).all()
    owners: dict[int, int] = {}
    for unit_id, person_id in rows:
        owners.setdefault(unit_id, person_id)
    return owners


def _levy_pockets(session: Session, estate: Estate, units: list[Unit], create: bool) -> dict[int, int]:
    """unit id -> its owner's levy pocket id, opening the missing ones in one insert."""
    codes = {f"owner_pocket:{u.number}:levy": u for u in units}
    found = dict(session.execute(select(Account.code, Account.id).where(
        Account.estate_id == estate.id, Account.kind == "owner_pocket", Account.utility == "levy")).all())
    missing = [u for code, u in codes.items() if code not in found]
    if missing and create:
        insert_rows(session, Account, [
            {"estate_id": estate.id, "code": f"owner_pocket:{u.number}:levy", "kind": "owner_pocket",
             "utility": "levy", "commodity": estate.currency, "name": f"Owner of unit {u.number} levy",
             "balance": Decimal("0")} for u in missing])
        found = dict(session.execute(select(Account.code, Account.id).where(
            Account.estate_id == estate.id, Account.kind == "owner_pocket", Account.utility == "levy")).all())
    return {u.id: found[code] for code, u in codes.items() if code in found}


def run_levies(session: Session, estate: Estate, period: str, *, dry_run: bool = False, user_id: int | None = None,
               progress=None, now=None) -> LevyRunReport:
    """Charge every levy due in the month to each unit's owner once; commits once (dry: writes nothing)."""
    period = check_run(session, estate, period, now)
    report = LevyRunReport(estate.code, period, dry_run)
    due = [d for d in definitions_of(session, estate) if charged_in(d, period)]
    units = list(session.scalars(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.number)))
    by_id = {u.id: u for u in units}
    live: set[tuple[int, int]] = set()
    runs: dict[tuple[int, int], int] = defaultdict(int)
    charged_this_month: dict[int, Decimal] = defaultdict(Decimal)
    for definition_id, unit_id, run, status, amount in session.execute(
            select(LevyCharge.definition_id, LevyCharge.unit_id, LevyCharge.run, LevyCharge.status,
                   LevyCharge.amount).where(LevyCharge.estate_id == estate.id, LevyCharge.period == period)):
        runs[(definition_id, unit_id)] = max(runs[(definition_id, unit_id)], run)
        if status == "charged":
            live.add((definition_id, unit_id))
            charged_this_month[unit_id] += amount

    wanted: list[tuple[LevyDefinition, ShareRow]] = []
    for definition in due:
        for row in shares_of(session, estate, definition,
                             [u for u in units if definition.unit_ids is None or u.id in set(definition.unit_ids)]):
            if (definition.id, row.unit_id) in live:
                report.already += 1
            elif row.share > 0:
                wanted.append((definition, row))
    if progress is not None:
        progress.set_total(len(wanted))
    pockets = _levy_pockets(session, estate, units, create=not dry_run)
    owners = current_owners(session, list(by_id), period)
    auto = estate.feature_enabled("levies_auto_deduct")

    if not dry_run:
        # What is still owed from earlier months becomes arrears before this month's charges.
        _open_overdue(session, estate, period, pockets, owners, charged_this_month, by_id, report, user_id)
    start, _ = month_bounds(period, estate.timezone)
    income = None if dry_run else system_account(session, estate, "levy", "income", name="Levy income")
    for offset in range(0, len(wanted), BATCH):
        batch = wanted[offset:offset + BATCH]
        for definition, row in batch:
            report.charged += 1
            report.total += row.share
            count, amount = report.by_definition.get(definition.name, (0, Decimal("0")))
            report.by_definition[definition.name] = (count + 1, amount + row.share)
        if dry_run:
            continue
        entries = [Entry(
            estate_id=estate.id, kind="levy",
            idempotency_key=f"levy:{d.id}:{r.unit_id}:{period}:{runs[(d.id, r.unit_id)] + 1}",
            legs=[(pockets[r.unit_id], -r.share), (income.id, r.share)], occurred_at=start,
            memo=f"{d.name} {period}: unit {r.unit_number}", created_by_user_id=user_id) for d, r in batch]
        posted = post_many(session, entries)
        insert_rows(session, LevyCharge, [
            {"estate_id": estate.id, "definition_id": d.id, "unit_id": r.unit_id, "period": period,
             "run": runs[(d.id, r.unit_id)] + 1, "amount": r.share, "owner_person_id": owners.get(r.unit_id),
             "transaction_id": p.transaction_id, "status": "charged", "created_at": utcnow()}
            for (d, r), p in zip(batch, posted)])
        if progress is not None:
            progress.step(len(batch))
    if dry_run:
        session.rollback()
        return report
    if auto:
        _open_shortfalls(session, estate, period, pockets, owners, by_id, report, user_id)
    for unit_id in sorted({r.unit_id for _, r in wanted} - set(owners)):
        report.problems.append(f"Unit {by_id[unit_id].number} has no owner on record: its levy is charged to "
                               "the unit's levy pocket but cannot become arrears on a person.")
    audit.record(session, "levy.run", f"levy_run:{estate.code}:{period}",
                 new={"period": period, "charged": report.charged, "already": report.already,
                      "total": str(report.total), "arrears_opened": report.arrears_opened},
                 estate_id=estate.id)
    session.commit()
    return report


def _balances(session: Session, account_ids) -> dict[int, Decimal]:
    ids = list(account_ids)
    if not ids:
        return {}
    return dict(session.execute(select(Account.id, Account.balance).where(Account.id.in_(ids))).all())


def _open_overdue(session, estate, period, pockets, owners, charged_this_month, by_id, report, user_id) -> None:
    balances = _balances(session, pockets.values())
    for unit_id, pocket_id in pockets.items():
        owed_before = -(balances.get(pocket_id, Decimal("0")) + charged_this_month.get(unit_id, Decimal("0")))
        if owed_before > 0 and unit_id in owners:
            _arrears(session, estate, by_id[unit_id], pocket_id, owners[unit_id], owed_before,
                     f"overdue:{unit_id}:{period}", f"Levies unpaid before {period}, unit {by_id[unit_id].number}",
                     report, user_id)


def _open_shortfalls(session, estate, period, pockets, owners, by_id, report, user_id) -> None:
    balances = _balances(session, pockets.values())
    for unit_id, pocket_id in pockets.items():
        short = -balances.get(pocket_id, Decimal("0"))
        if short > 0 and unit_id in owners:
            _arrears(session, estate, by_id[unit_id], pocket_id, owners[unit_id], short,
                     f"short:{unit_id}:{period}",
                     f"Levy {period} not covered by the levy pocket, unit {by_id[unit_id].number}", report, user_id)


def _arrears(session, estate, unit, pocket_id, person_id, amount, ref, reason, report, user_id) -> None:
    before = session.scalar(select(ArrearsRecord.id).where(
        ArrearsRecord.estate_id == estate.id, ArrearsRecord.source == "levy", ArrearsRecord.source_ref == ref))
    if before is not None:
        return
    open_arrears(session, estate=estate, person=session.get(Person, person_id), amount=amount, reason=reason,
                 source="levy", source_ref=ref, against=session.get(Account, pocket_id), unit=unit,
                 occurred_at=month_bounds(period_of_ref(ref), estate.timezone)[0], user_id=user_id)
    report.arrears_opened += 1
    report.arrears_amount += amount


def period_of_ref(ref: str) -> str:
    """The month a levy arrears reference is for (`overdue:<unit>:<period>`): the record is dated its start."""
    return ref.rsplit(":", 1)[1]


def job_target(estate: Estate, period: str) -> str:
    return f"{estate.code}:{period}"


@job(JOB_KIND)
def levy_run_job(session: Session, progress, estate_id: int, period: str, user_id: int | None = None) -> str:
    """Post a month's levy charges for an estate; safe to re-run (posts nothing the second time)."""
    estate = session.get(Estate, estate_id)
    if estate is None:
        raise ValueError(f"estate {estate_id} does not exist")
    report = run_levies(session, estate, period, user_id=user_id, progress=progress)
    for problem in report.problems[:50]:
        progress.error(problem)
    return report.summary(estate.currency)


def start_levy_run(estate: Estate, period: str, user_id: int | None = None):
    """Enqueue the month's levy run for an estate (joins a run already under way)."""
    return enqueue(JOB_KIND, estate.id, period, user_id, target=job_target(estate, period), user_id=user_id,
                   queue="low")


def schedule_levy_runs(session: Session) -> list[str]:
    """For the 1st of the month: charge the month just begun in every estate with levies."""
    started = []
    for estate in session.scalars(select(Estate).where(Estate.id.in_(
            select(LevyDefinition.estate_id))).order_by(Estate.id)):
        period = current_period(estate.tz)
        try:
            check_run(session, estate, period)
        except LevyRunRefused:
            continue
        start_levy_run(estate, period)
        started.append(job_target(estate, period))
    return started


# --- paying, and what is owed ------------------------------------------------------------


@dataclass
class OwedRow:
    unit_id: int
    unit_number: str
    invoiced: Decimal  # this month's charges not yet paid (the pocket below zero)
    arrears: Decimal  # open levy arrears records
    prepaid: Decimal  # what is in the pocket beyond the charges

    @property
    def owed(self) -> Decimal:
        return self.invoiced + self.arrears


def owed_by_unit(session: Session, estate: Estate, unit_ids: list[int] | None = None) -> list[OwedRow]:
    """Per unit: levies invoiced and unpaid, levy arrears, and any prepaid levy credit."""
    query = select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)
    if unit_ids is not None:
        query = query.where(Unit.id.in_(unit_ids))
    units = session.execute(query.order_by(Unit.number)).all()
    pockets = dict(session.execute(select(Account.code, Account.balance).where(
        Account.estate_id == estate.id, Account.kind == "owner_pocket", Account.utility == "levy")).all())
    arrears = dict(session.execute(
        select(ArrearsRecord.unit_id, func.sum(-Account.balance))
        .join(Account, Account.id == ArrearsRecord.account_id)
        .where(ArrearsRecord.estate_id == estate.id, ArrearsRecord.source == "levy",
               ArrearsRecord.status == "open").group_by(ArrearsRecord.unit_id)).all())
    rows = []
    for unit_id, number in units:
        balance = pockets.get(f"owner_pocket:{number}:levy", Decimal("0"))
        rows.append(OwedRow(unit_id, number, quantize(max(-balance, Decimal(0)), estate.currency),
                            quantize(arrears.get(unit_id) or Decimal(0), estate.currency),
                            quantize(max(balance, Decimal(0)), estate.currency)))
    return rows


def record_levy_payment(session: Session, unit: Unit, amount_text: str, reference: str, *,
                        user_id: int | None = None, paid_at=None) -> Decimal:
    """Credit an owner's levy payment (EFT) to the unit's levy pocket and pay its levy arrears first; commits."""
    from app.models.payments import Payment
    from app.payments import PaymentError
    from app.payments.credit import credit_payment

    estate = unit.estate
    errors = {}
    try:
        amount = parse_amount(amount_text, estate.currency)
        if amount <= 0:
            errors["amount"] = "A payment is for more than nothing."
    except MoneyError as error:
        errors["amount"] = f"Amount: {error}."
    reference = (reference or "").strip()
    if not reference or len(reference) > 60:
        errors["reference"] = "Enter the bank reference of the payment (up to 60 characters)."
    if errors:
        raise LevyError(errors)
    provider_ref = f"levy:{estate.code}:{reference}"[:64]
    existing = session.scalar(select(Payment).where(Payment.provider == "eft", Payment.provider_ref == provider_ref))
    if existing is not None:
        raise LevyError({"reference": f"A payment with reference {reference!r} was recorded already."})
    payment = Payment(provider="eft", provider_ref=provider_ref, reference=reference, estate_id=estate.id,
                      unit_id=unit.id, utility="levy", amount=amount, currency=estate.currency,
                      status="to_confirm", paid_at=paid_at or utcnow(), created_by_user_id=user_id)
    session.add(payment)
    session.flush()
    try:
        credit_payment(session, payment, user_id=user_id)
    except (PaymentError, LedgerError) as error:
        session.rollback()
        raise LevyError({"amount": str(error)}) from None
    pocket = owner_pocket(session, unit, "levy")
    left = amount
    for record in open_records(session, unit_id=unit.id, estate_id=estate.id):
        if record.source != "levy" or left <= 0:
            continue
        try:
            left -= pay_arrears(session, record, left, source=pocket, key=f"levy_payment:{payment.id}:{record.id}",
                                memo=f"Levy payment {reference}", user_id=user_id)
        except ArrearsError as error:  # pragma: no cover - a refused record leaves the money in the pocket
            log.warning("levy payment %s: %s", payment.id, error)
    session.commit()
    return amount


def seed_demo_levies(session: Session, estate: Estate) -> None:
    """Demo: a monthly admin levy by floor area and a quarterly reserve levy, charged for the last three
    months, with some owners paid up, so levies, invoices and arrears all show; commits."""
    from app.periods import previous_period

    this = current_period(estate.tz)
    months = [previous_period(previous_period(previous_period(this)))]
    while months[-1] < previous_period(this):
        months.append(next_month(months[-1]))
    if any(u.floor_area_m2 is None for u in estate.units):
        for index, unit in enumerate(estate.units):
            unit.floor_area_m2 = unit.floor_area_m2 or Decimal(55 + 15 * (index % 5))
    _, month = parse_period(months[0])
    save_definition(session, estate, {"name": "Admin levy", "amount": "18000.00", "frequency": "monthly",
                                      "allocation": "floor_area", "effective_from": months[0], "units": "all"})
    save_definition(session, estate, {"name": "Reserve fund", "amount": "6000.00", "frequency": "quarterly",
                                      "charge_month": str(month), "allocation": "equal",
                                      "effective_from": months[0], "units": "all"})
    for period in months[:-1]:
        run_levies(session, estate, period)
        for number, unit in enumerate(estate.units):
            if number % 3 != 2:  # every third owner falls behind
                owed = owed_by_unit(session, estate, [unit.id])[0].owed
                if owed > 0:
                    from datetime import timedelta
                    paid_at = month_bounds(period, estate.timezone)[0] + timedelta(days=9, hours=8)
                    record_levy_payment(session, unit, str(owed), f"DEMO-{period}-{unit.number}", paid_at=paid_at)
    # The last month is left for `flask levies run --estate SUN --month <last month>` (or the page's button).


def next_month(period: str) -> str:
    from app.periods import next_period

    return next_period(period)
