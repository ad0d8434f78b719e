"""Statement figures for a unit's month, read from the ledger alone (O5).

Owns what a monthly statement says: per wallet pocket the opening balance, the month's
movements grouped by what caused them (top-ups, consumption, standing charges, levies,
everything else as adjustments) and the closing balance. Month membership is the ledger's
own `period` column (the estate's local month of `occurred_at`), so a closing balance is by
construction the next month's opening balance and the figures reconcile to the postings
exactly. Metered quantities come from the Reading table and are shown, never summed into
money. `load_statements` loads many units of one estate in a fixed number of queries;
`statement_for` is the one-unit call the pages use.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from app import periods
from app.estates.settings_catalog import setting_default
from app.settings import get_setting
from app.ledger.anchors import Anchor, chain_head
from app.models import (
    Account, Estate, LedgerTransaction, Meter, Person, Posting, Reading, Tenancy, Unit,
    UnitOwnership, Wallet, utcnow,
)
from app.money import UTILITY_UNITS, quantize
from app.sql_arrays import planned_for_these_values  # the guard against generic plans
from app.periods import InvalidPeriod

DEFAULT_BRAND_COLOUR: str = setting_default("brand_colour")
CATEGORIES = ("topups", "consumption", "standing_charges", "levies", "adjustments")
CATEGORY_LABELS = {"topups": "Top-ups", "consumption": "Consumption",
                   "standing_charges": "Standing charges", "levies": "Levies",
                   "adjustments": "Adjustments"}
UTILITY_LABELS = {"electricity": "Electricity", "water": "Water", "hot_water": "Hot water",
                  "solar": "Solar"}
_RATE_IN_MEMO = re.compile(r" at (\S+ [\d\u202f.,]+/(?:kWh|kL))\s*$")


class StatementPeriodError(ValueError):
    """The month asked for is malformed or has not begun yet."""


def category_of(kind: str) -> str:
    """Which statement line a ledger transaction kind counts under."""
    if kind in ("topup", "payment") or kind.startswith(("topup", "payment")):
        return "topups"
    if kind == "consumption" or kind.startswith("consumption"):
        return "consumption"
    if "standing" in kind:
        return "standing_charges"
    if "levy" in kind or "levies" in kind:
        return "levies"
    return "adjustments"


def month_bounds(period: str, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants where an estate's local month starts and the next one starts."""
    try:
        return periods.month_bounds(period, timezone)
    except InvalidPeriod as error:  # callers (jobs, views) handle the statement's own error
        raise StatementPeriodError(str(error)) from error


@dataclass
class PocketFigures:
    """One pocket's month: opening, signed movements per category, closing."""

    utility: str
    commodity: str
    opening: Decimal = Decimal(0)
    movements: dict[str, Decimal] = field(default_factory=lambda: {c: Decimal(0) for c in CATEGORIES})
    topup_value: Decimal | None = None  # units mode: the money paid for the units bought
    quantity: Decimal | None = None  # metered kWh / kL from readings, for information
    rates: list[str] = field(default_factory=list)  # tariffs as the consumption postings state them
    daily: dict[date, Decimal] = field(default_factory=dict)  # consumption per local day (positive)

    @property
    def closing(self) -> Decimal:
        return self.opening + sum(self.movements.values(), Decimal(0))

    @property
    def label(self) -> str:
        return UTILITY_LABELS.get(self.utility, self.utility)

    @property
    def quantity_unit(self) -> str:
        return UTILITY_UNITS.get(self.utility, "KWH")


@dataclass
class TopupLine:
    """One top-up transaction; `parts` are (utility, amount, commodity) per pocket it filled."""

    transaction_id: int
    occurred_at: datetime
    memo: str
    parts: list[tuple[str, Decimal, str]] = field(default_factory=list)


@dataclass
class LevyFigures:
    """The owner's levy pocket over the month (B3): what was charged, paid, moved to arrears."""

    currency: str
    opening: Decimal = Decimal(0)
    charged: Decimal = Decimal(0)  # negative: the month's levy charges
    paid: Decimal = Decimal(0)  # levy payments into the pocket
    other: Decimal = Decimal(0)  # unpaid levies moved to arrears records, corrections
    arrears: Decimal = Decimal(0)  # levy arrears still owed at the month's end
    lines: list[tuple[str, Decimal]] = field(default_factory=list)  # the month's charges (memo, amount)

    @property
    def closing(self) -> Decimal:
        return self.opening + self.charged + self.paid + self.other

    def figures(self) -> dict:
        return {"opening": str(self.opening), "charged": str(self.charged), "paid": str(self.paid),
                "other": str(self.other), "closing": str(self.closing), "arrears": str(self.arrears)}


@dataclass
class StatementData:
    """Everything one statement shows, as plain values (picklable for worker processes)."""

    estate_id: int
    estate_code: str
    estate_name: str
    currency: str
    timezone: str
    denomination: str
    brand_colour: str
    unit_id: int
    unit_number: str
    period: str
    start: datetime
    end: datetime
    tenants: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    pockets: list[PocketFigures] = field(default_factory=list)
    topups: list[TopupLine] = field(default_factory=list)
    # The estate's chain head when the statement was made: printed as the ledger anchor.
    chain_head: Anchor | None = None
    levy: LevyFigures | None = None  # the owner's levies, when the unit has a levy pocket (B3)

    @property
    def units_mode(self) -> bool:
        return self.denomination == "units"

    @property
    def period_label(self) -> str:
        return datetime.strptime(self.period, "%Y-%m").strftime("%B %Y")

    @property
    def topup_value_total(self) -> Decimal | None:
        values = [p.topup_value for p in self.pockets if p.topup_value is not None]
        return sum(values, Decimal(0)) if values else None

    def figures(self) -> dict:
        """The statement's numbers as strings: what is archived, hashed and compared on re-runs."""
        found = self._pocket_figures()
        if self.levy is not None:  # only then: statements without levies keep their hashes
            found["levy"] = self.levy.figures()
        return found

    def _pocket_figures(self) -> dict:
        return {
            "estate": self.estate_code, "unit": self.unit_number, "period": self.period,
            "pockets": [{
                "utility": p.utility, "commodity": p.commodity, "opening": str(p.opening),
                **{c: str(p.movements[c]) for c in CATEGORIES}, "closing": str(p.closing),
                "topup_value": None if p.topup_value is None else str(p.topup_value),
            } for p in self.pockets],
        }

    def figures_sha256(self) -> str:
        return figures_sha256(self.figures())


def figures_sha256(figures: dict) -> str:
    """A stable hash of a statement's figures."""
    return hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()


def statement_for(session: Session, unit: Unit, period: str) -> StatementData:
    """One unit's statement for a month."""
    return load_statements(session, unit.estate, period, unit_ids=[unit.id])[0]


def load_statements(session: Session, estate: Estate, period: str,
                    unit_ids: list[int] | None = None) -> list[StatementData]:
    """Statements of an estate's units (all, or `unit_ids`) for a month, in a fixed number of queries."""
    start, end = month_bounds(period, estate.timezone)
    if start > utcnow():
        raise StatementPeriodError(gettext("%(month)s has not begun in %(estate)s.", month=period, estate=estate.name))
    units_query = select(Unit.id, Unit.number).where(Unit.estate_id == estate.id).order_by(Unit.number)
    if unit_ids is not None:
        units_query = units_query.where(Unit.id.in_(unit_ids))
    units = session.execute(units_query).all()
    colour = get_setting(session, "brand_colour", estate.id, DEFAULT_BRAND_COLOUR)
    statements = {
        unit_id: StatementData(
            estate.id, estate.code, estate.name, estate.currency, estate.timezone,
            estate.wallet_denomination, colour, unit_id, number, period, start, end)
        for unit_id, number in units
    }
    if not statements:
        return []
    head = chain_head(session, estate.id)
    for statement in statements.values():
        statement.chain_head = head
    postgres = session.get_bind().dialect.name == "postgresql"
    # psycopg prepares a statement run five times and PostgreSQL then reuses a generic plan,
    # which for one unit's postings was a scan of the estate's whole ledger (0.5 s a statement).
    with planned_for_these_values(session, postgres):
        pockets = _load_pockets(session, estate, statements, unit_ids)
        _add_balances(session, estate, period, pockets, unit_ids)
        _add_topups(session, estate, period, pockets, statements, unit_ids)
        _add_daily_consumption(session, estate, period, pockets, unit_ids)
        _add_quantities(session, estate, statements, start, end, unit_ids)
        _add_people(session, statements, start, end)
        _add_levies(session, estate, period, statements)
    return list(statements.values())


# --- loading ---------------------------------------------------------------------------


def _pocket_filter(estate: Estate, unit_ids: list[int] | None, pockets: dict | None = None,
                   column=Posting.account_id):
    """The condition selecting the estate's pocket accounts (of some units).

    For some units the pocket ids are named outright: PostgreSQL then walks the postings
    index per account instead of planning for the estate's whole ledger.
    """
    if unit_ids is not None and pockets is not None:
        return column.in_(list(pockets) or [-1])
    condition = and_(Account.estate_id == estate.id, Account.kind == "pocket")
    if unit_ids is not None:
        condition = and_(condition, Account.wallet_id.in_(
            select(Wallet.id).where(Wallet.unit_id.in_(unit_ids))))
    return condition


def _load_pockets(session: Session, estate: Estate, statements: dict[int, StatementData],
                  unit_ids: list[int] | None) -> dict[int, PocketFigures]:
    """Each unit's pockets in utility order, by account id."""
    rows = session.execute(
        select(Account.id, Account.utility, Account.commodity, Wallet.unit_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .where(_pocket_filter(estate, unit_ids))
        .order_by(Wallet.unit_id, Account.utility)
    )
    pockets = {}
    for account_id, utility, commodity, unit_id in rows:
        if unit_id in statements:
            pocket = PocketFigures(utility, commodity)
            statements[unit_id].pockets.append(pocket)
            pockets[account_id] = pocket
    return pockets


def _add_balances(session: Session, estate: Estate, period: str,
                  pockets: dict[int, PocketFigures], unit_ids: list[int] | None) -> None:
    """Opening balances (every earlier period) and the month's movements per kind."""
    in_month = LedgerTransaction.period == period
    grouped = session.execute(
        select(Posting.account_id, in_month.label("in_month"), LedgerTransaction.kind,
               func.sum(Posting.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .join(Account, Account.id == Posting.account_id)
        .where(_pocket_filter(estate, unit_ids, pockets), LedgerTransaction.period <= period)
        .group_by(Posting.account_id, in_month, LedgerTransaction.kind)
    )
    for account_id, now, kind, total in grouped:
        pocket = pockets.get(account_id)
        if pocket is None:
            continue
        amount = Decimal(total)
        if now:
            pocket.movements[category_of(kind)] += amount
        else:
            pocket.opening += amount
    for pocket in pockets.values():  # SQLite sums Numeric as REAL: back to minor units
        pocket.opening = quantize(pocket.opening, pocket.commodity)
        pocket.movements = {c: quantize(v, pocket.commodity) for c, v in pocket.movements.items()}


def _add_topups(session: Session, estate: Estate, period: str, pockets: dict[int, PocketFigures],
                statements: dict[int, StatementData], unit_ids: list[int] | None) -> None:
    """The month's top-up lines; in units mode also the money each pocket's units cost."""
    rows = session.execute(
        select(Posting.account_id, LedgerTransaction.id, LedgerTransaction.occurred_at,
               LedgerTransaction.kind, LedgerTransaction.memo, Posting.amount, Wallet.unit_id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .join(Account, Account.id == Posting.account_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .where(_pocket_filter(estate, unit_ids, pockets), LedgerTransaction.period == period,
               LedgerTransaction.kind != "consumption")  # by far the most rows; not top-ups
        .order_by(LedgerTransaction.occurred_at, LedgerTransaction.id, Posting.id)
    ).all()
    topup_transactions: dict[tuple[int, int], TopupLine] = {}
    for account_id, transaction_id, occurred_at, kind, memo, amount, unit_id in rows:
        pocket = pockets.get(account_id)
        if pocket is None or category_of(kind) != "topups":
            continue
        line = topup_transactions.get((unit_id, transaction_id))
        if line is None:
            line = topup_transactions[(unit_id, transaction_id)] = TopupLine(
                transaction_id, occurred_at, memo)
            statements[unit_id].topups.append(line)
        line.parts.append((pocket.utility, Decimal(amount), pocket.commodity))
    if estate.wallet_denomination != "units":
        return
    for pocket in pockets.values():
        pocket.topup_value = Decimal(0)
    if not topup_transactions:
        return
    # Units mode: a top-up's money goes to revenue of the utility whose units were sold.
    pocket_posting, revenue_posting = aliased(Posting), aliased(Posting)
    revenue = aliased(Account)
    values = session.execute(
        select(pocket_posting.account_id, revenue_posting.amount)
        .join(LedgerTransaction, LedgerTransaction.id == pocket_posting.transaction_id)
        .join(Account, Account.id == pocket_posting.account_id)
        .join(revenue_posting, revenue_posting.transaction_id == pocket_posting.transaction_id)
        .join(revenue, and_(revenue.id == revenue_posting.account_id, revenue.kind == "revenue",
                            revenue.utility == Account.utility))
        .where(_pocket_filter(estate, unit_ids, pockets, pocket_posting.account_id),
               LedgerTransaction.period == period, pocket_posting.amount > 0)
    )
    for account_id, amount in values:
        pocket = pockets.get(account_id)
        if pocket is not None:
            pocket.topup_value += Decimal(amount)
    for pocket in pockets.values():
        pocket.topup_value = quantize(pocket.topup_value, estate.currency)


def _add_daily_consumption(session: Session, estate: Estate, period: str,
                           pockets: dict[int, PocketFigures], unit_ids: list[int] | None) -> None:
    """Consumption per local day for the chart, and the tariffs the postings' memos state."""
    tz = estate.tz
    rows = session.execute(
        select(Posting.account_id, LedgerTransaction.occurred_at, Posting.amount, LedgerTransaction.memo)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .join(Account, Account.id == Posting.account_id)
        .where(_pocket_filter(estate, unit_ids, pockets), LedgerTransaction.period == period,
               LedgerTransaction.kind == "consumption")
    )
    for account_id, occurred_at, amount, memo in rows:
        pocket = pockets.get(account_id)
        if pocket is not None:
            day = occurred_at.astimezone(tz).date()
            pocket.daily[day] = pocket.daily.get(day, Decimal(0)) - Decimal(amount)
            found = _RATE_IN_MEMO.search(memo or "")
            if found and found.group(1) not in pocket.rates:
                pocket.rates.append(found.group(1))


def _add_quantities(session: Session, estate: Estate, statements: dict[int, StatementData],
                    start: datetime, end: datetime, unit_ids: list[int] | None) -> None:
    """Metered quantity per unit and utility from readings taken in the month."""
    query = (
        select(Meter.unit_id, Meter.utility, func.sum(Reading.consumption))
        .join(Reading, Reading.meter_id == Meter.id)
        .where(Meter.estate_id == estate.id, Meter.role == "unit", Meter.unit_id.is_not(None),
               Reading.taken_at > start, Reading.taken_at <= end)
        .group_by(Meter.unit_id, Meter.utility)
    )
    if unit_ids is not None:
        query = query.where(Meter.unit_id.in_(unit_ids))
    totals: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for unit_id, utility, total in session.execute(query):
        if total is not None:
            totals[(unit_id, utility)] += Decimal(total)
    for unit_id, statement in statements.items():
        for pocket in statement.pockets:
            found = totals.get((unit_id, pocket.utility))
            if found is not None:
                pocket.quantity = quantize(found, pocket.quantity_unit)


def _add_people(session: Session, statements: dict[int, StatementData],
                start: datetime, end: datetime) -> None:
    """Tenants whose tenancy overlaps the month, and the unit's owners in it."""
    ids = list(statements)
    first_day = start.date()
    last_day = (end - timedelta(seconds=1)).date()
    tenants = session.execute(
        select(Tenancy.unit_id, Person.full_name).join(Person, Person.id == Tenancy.person_id)
        .where(Tenancy.unit_id.in_(ids), Tenancy.move_in <= last_day,
               (Tenancy.move_out.is_(None)) | (Tenancy.move_out >= first_day))
        .order_by(Tenancy.move_in)
    )
    for unit_id, name in tenants:
        if name not in statements[unit_id].tenants:
            statements[unit_id].tenants.append(name)
    owners = session.execute(
        select(UnitOwnership.unit_id, Person.full_name).join(Person, Person.id == UnitOwnership.person_id)
        .where(UnitOwnership.unit_id.in_(ids), UnitOwnership.since <= last_day,
               (UnitOwnership.until.is_(None)) | (UnitOwnership.until >= first_day))
    )
    for unit_id, name in owners:
        if name not in statements[unit_id].owners:
            statements[unit_id].owners.append(name)


def _add_levies(session: Session, estate: Estate, period: str, statements: dict[int, StatementData]) -> None:
    """The owner's levy pocket of each unit that has one: opening, the month's moves, levy arrears."""
    from app.models.arrears import ArrearsRecord

    numbers = {s.unit_number: s for s in statements.values()}
    codes = {f"owner_pocket:{number}:levy": number for number in numbers}
    accounts = dict(session.execute(select(Account.id, Account.code).where(
        Account.estate_id == estate.id, Account.kind == "owner_pocket", Account.utility == "levy",
        Account.code.in_(list(codes)))).all())
    if not accounts:
        return
    figures = {}
    for account_id, code in accounts.items():
        statement = numbers[codes[code]]
        statement.levy = figures[account_id] = LevyFigures(estate.currency)
    in_month = LedgerTransaction.period == period
    rows = session.execute(
        select(Posting.account_id, in_month.label("in_month"), LedgerTransaction.kind, func.sum(Posting.amount))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(list(accounts)), LedgerTransaction.period <= period)
        .group_by(Posting.account_id, in_month, LedgerTransaction.kind))
    for account_id, now, kind, total in rows:
        levy = figures[account_id]
        amount = Decimal(total)
        if not now:
            levy.opening += amount
        elif kind == "levy":
            levy.charged += amount
        elif category_of(kind) == "topups":
            levy.paid += amount
        else:
            levy.other += amount
    for account_id, memo, amount in session.execute(
            select(Posting.account_id, LedgerTransaction.memo, Posting.amount)
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(Posting.account_id.in_(list(accounts)), LedgerTransaction.period == period,
                   LedgerTransaction.kind == "levy").order_by(LedgerTransaction.id)):
        figures[account_id].lines.append((memo, Decimal(amount)))
    unit_ids = {s.unit_id: s for s in statements.values()}
    for unit_id, total in session.execute(
            select(ArrearsRecord.unit_id, func.sum(Posting.amount))
            .join(Posting, Posting.account_id == ArrearsRecord.account_id)
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(ArrearsRecord.estate_id == estate.id, ArrearsRecord.source == "levy",
                   ArrearsRecord.unit_id.in_(list(unit_ids)), LedgerTransaction.period <= period)
            .group_by(ArrearsRecord.unit_id)):
        if unit_ids[unit_id].levy is not None:
            unit_ids[unit_id].levy.arrears = -Decimal(total)
    for levy in figures.values():  # SQLite sums Numeric as REAL: back to minor units
        for name in ("opening", "charged", "paid", "other", "arrears"):
            setattr(levy, name, quantize(getattr(levy, name), estate.currency))
