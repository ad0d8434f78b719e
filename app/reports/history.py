"""A unit's transaction history (T3): pocket postings with a running balance, filters and paging,
and the explanation of one charge (readings, tariff version, bands or time-of-use windows).

The running balance is the pocket's balance after each posting, computed in SQL with a
window over the unit's pocket postings (in time order, then ledger order), so filters and
pages never change the figure a row shows and the newest row always equals the cached
balance. Explanations re-run the pure tariff split (app/billing/tariffs.py) over the
readings that produced a charge.

A tenant sees only the unit's history during their own tenancies (`viewer_windows`): every
read here takes those windows, so the list, a transaction's detail, the exports, the
dashboard's recent activity and My payments never show a previous tenant's entries. Staff
and the unit's owners, agents, body corporate and utility see it all.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from app.auth.scope import unit_ids_query
from app.billing import tariffs
from app.metering import validation
from app.models import Account, Estate, LedgerTransaction, Meter, Posting, Reading, Tenancy, Unit, User, Wallet
from app.models.meter import UTILITIES
from app.billing.tariff_classes import unit_class_name
from app.models.metering import TariffVersion
from app.money import UTILITY_UNITS, quantize
from app.periods import add_months, first_day
from app.reports.summaries import StatementLine
from app.reports.usage import local_midnight

PAGE_SIZE = 25
# Roles that see a unit's whole history; a tenant sees only their own tenancies.
WHOLE_HISTORY_ROLES = ("owner", "agent", "body_corporate", "utility")

Window = tuple[datetime, datetime | None]  # [start, end) in UTC; end None: still running


def viewer_windows(session: Session, user: User, unit: Unit) -> list[Window] | None:
    """The periods of the unit's history the user may see: None for all, else their tenancies."""
    if user.is_staff or session.scalar(select(Unit.id).where(
            Unit.id == unit.id, Unit.id.in_(unit_ids_query(user, WHOLE_HISTORY_ROLES)))) is not None:
        return None
    if user.person_id is None:
        return []
    return tenancy_windows(session, unit, user.person_id)


def tenancy_windows(session: Session, unit: Unit, person_id: int) -> list[Window]:
    """The person's tenancies of the unit, from local move-in midnight to local move-out midnight."""
    tz = unit.estate.tz
    tenancies = session.execute(select(Tenancy.move_in, Tenancy.move_out).where(
        Tenancy.unit_id == unit.id, Tenancy.person_id == person_id).order_by(Tenancy.move_in)).all()
    return [(local_midnight(move_in, tz), local_midnight(move_out, tz) if move_out else None)
            for move_in, move_out in tenancies]


def overlaps(start: datetime, end: datetime, windows: list[Window] | None) -> bool:
    """Whether [start, end) shares any moment with the windows (None: unrestricted)."""
    return windows is None or any(begin < end and (stop is None or start < stop) for begin, stop in windows)


def within(column, windows: list[Window] | None) -> ColumnElement[bool] | None:
    """A condition keeping `column` (a UTC instant) inside the windows; None when unrestricted."""
    if windows is None:
        return None
    if not windows:
        return false()
    return or_(*[and_(column >= start, column < end) if end is not None else column >= start
                 for start, end in windows])


class HistoryFilterError(ValueError):
    """A filter value that cannot be read (bad date, unknown pocket, page out of range)."""


@dataclass(frozen=True)
class HistoryFilters:
    utility: str | None = None
    kind: str | None = None
    date_from: date | None = None  # local dates, both inclusive
    date_to: date | None = None
    page: int = 1

    def query_args(self) -> dict[str, str]:
        """The filters as URL parameters (without the page), for links that keep them."""
        args = {"utility": self.utility, "kind": self.kind,
                "from": self.date_from.isoformat() if self.date_from else None,
                "to": self.date_to.isoformat() if self.date_to else None}
        return {k: v for k, v in args.items() if v}


def parse_filters(args: Mapping[str, str]) -> HistoryFilters:
    """Read `utility`, `kind`, `from`, `to` (YYYY-MM-DD) and `page` from request arguments."""
    utility = (args.get("utility") or "").strip() or None
    if utility is not None and utility not in UTILITIES:
        raise HistoryFilterError(gettext("pocket must be one of %(choices)s", choices=", ".join(UTILITIES)))
    kind = (args.get("kind") or "").strip() or None
    if kind is not None and (len(kind) > 32 or not kind.replace("_", "").isalnum()):
        raise HistoryFilterError(gettext("unknown kind of transaction"))
    dates = {}
    for name in ("from", "to"):
        text = (args.get(name) or "").strip()
        try:
            dates[name] = date.fromisoformat(text) if text else None
        except ValueError:
            raise HistoryFilterError(gettext("'%(name)s' must be a date like 2026-11-01, not %(text)s",
                                                 name=name, text=repr(text))) from None
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        raise HistoryFilterError(gettext("'from' must not be after 'to'"))
    page_text = (args.get("page") or "1").strip()
    if not page_text.isdigit() or int(page_text) < 1:
        raise HistoryFilterError(gettext("page must be a whole number from 1"))
    return HistoryFilters(utility, kind, dates["from"], dates["to"], int(page_text))


@dataclass(frozen=True)
class HistoryRow:
    transaction_id: int
    occurred_at: datetime
    kind: str
    memo: str
    utility: str | None
    amount: Decimal
    commodity: str
    balance: Decimal  # the pocket's balance after this posting

    @property
    def explainable(self) -> bool:
        return self.kind in ("consumption", "standing_charge", "solar_export", "solar_allocation")


@dataclass
class HistoryPage:
    rows: list[HistoryRow]
    filters: HistoryFilters
    total: int
    page_size: int
    kinds: list[str] = field(default_factory=list)  # kinds present on the unit's pockets

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def unit_pocket_ids(session: Session, unit: Unit) -> list[int]:
    """The ids of the unit's wallet pockets."""
    return list(session.scalars(select(Account.id).join(Wallet, Wallet.id == Account.wallet_id)
                                .where(Wallet.unit_id == unit.id)))


def transaction_history(session: Session, unit: Unit, filters: HistoryFilters,
                        page_size: int = PAGE_SIZE, *, windows: list[Window] | None = None) -> HistoryPage:
    """One page of the unit's pocket postings in the windows, newest first, with running balances."""
    pockets = unit_pocket_ids(session, unit)
    if not pockets or windows == []:
        return HistoryPage([], filters, 0, page_size)
    order = (LedgerTransaction.occurred_at, LedgerTransaction.id, Posting.id)
    running = (
        select(Posting.id.label("posting_id"), Posting.transaction_id, Posting.account_id,
               Posting.amount, Posting.commodity, LedgerTransaction.occurred_at, LedgerTransaction.kind,
               LedgerTransaction.memo,
               func.sum(Posting.amount).over(partition_by=Posting.account_id, order_by=order).label("balance"))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(Posting.account_id.in_(pockets))
    ).subquery()
    conditions = []
    inside = within(running.c.occurred_at, windows)
    if inside is not None:
        conditions.append(inside)
    if filters.utility:
        conditions.append(Account.utility == filters.utility)
    if filters.kind:
        conditions.append(running.c.kind == filters.kind)
    tz = unit.estate.tz
    if filters.date_from:
        conditions.append(running.c.occurred_at >= local_midnight(filters.date_from, tz))
    if filters.date_to:
        conditions.append(running.c.occurred_at < local_midnight(filters.date_to + timedelta(days=1), tz))
    base = select(running, Account.utility).join(Account, Account.id == running.c.account_id).where(*conditions)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, math.ceil(total / page_size))
    if filters.page > pages:
        raise HistoryFilterError(gettext("there are only %(pages)s page(s)", pages=pages))
    rows = session.execute(base.order_by(running.c.occurred_at.desc(), running.c.transaction_id.desc(),
                                         running.c.posting_id.desc())
                           .limit(page_size).offset((filters.page - 1) * page_size)).mappings()
    kinds_query = select(LedgerTransaction.kind).join(Posting, Posting.transaction_id == LedgerTransaction.id) \
        .where(Posting.account_id.in_(pockets)).distinct().order_by(LedgerTransaction.kind)
    if inside is not None:
        kinds_query = kinds_query.where(within(LedgerTransaction.occurred_at, windows))
    kinds = list(session.scalars(kinds_query))
    return HistoryPage([HistoryRow(r["transaction_id"], r["occurred_at"], r["kind"], r["memo"], r["utility"],
                                   Decimal(r["amount"]), r["commodity"], Decimal(r["balance"])) for r in rows],
                       filters, total, page_size, kinds)


# --- why a charge is what it is ---------------------------------------------------------


@dataclass
class Explanation:
    """A transaction on the unit's pockets and, for a charge, what produced it."""

    transaction: LedgerTransaction
    estate: Estate
    lines: list[StatementLine]  # its postings on this unit's pockets
    meter: Meter | None = None
    readings: list[Reading] = field(default_factory=list)  # the readings the charge spans
    span: tuple[datetime, datetime] | None = None
    quantity: Decimal | None = None
    version: TariffVersion | None = None
    charge_lines: list[tariffs.ChargeLine] = field(default_factory=list)
    recomputed: Decimal | None = None  # the split's total (or the export's credit), rounded as posted
    exported: Decimal | None = None  # a net-metered meter's export (M3), credited at the solar rate
    solar_rate: Decimal | None = None
    tariff_class: str | None = None  # the unit's tariff class, named when the estate has several
    note: str = ""

    @property
    def charged(self) -> Decimal:
        return -sum((line.amount for line in self.lines), Decimal(0))

    @property
    def credited(self) -> Decimal:
        return -self.charged

    @property
    def quantity_unit(self) -> str | None:
        return UTILITY_UNITS[self.meter.utility] if self.meter else None


def explain_transaction(session: Session, unit: Unit, transaction_id: int, *,
                        windows: list[Window] | None = None) -> Explanation | None:
    """Explain one transaction on the unit's pockets; None if it has none there or is outside the windows."""
    pockets = unit_pocket_ids(session, unit)
    query = (select(Posting, Account.utility).join(Account, Account.id == Posting.account_id)
             .where(Posting.transaction_id == transaction_id, Posting.account_id.in_(pockets or [0]))
             .order_by(Posting.id))
    inside = within(LedgerTransaction.occurred_at, windows)
    if inside is not None:
        query = query.join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id).where(inside)
    rows = session.execute(query).all()
    if not rows:
        return None
    transaction = session.get(LedgerTransaction, transaction_id)
    estate = unit.estate
    lines = [StatementLine(transaction.id, transaction.occurred_at, transaction.kind, transaction.memo,
                           utility, Decimal(posting.amount), posting.commodity) for posting, utility in rows]
    found = Explanation(transaction, estate, lines)
    found.tariff_class = unit_class_name(session, unit)
    key = transaction.idempotency_key
    if key.startswith("reading:"):
        _, serial, stamp = key.split(":", 2)
        _explain_reading(session, found, unit, serial, datetime.fromisoformat(stamp))
    elif key.startswith("demo:consumption:"):
        serial, day = key.removeprefix("demo:consumption:").rsplit(":", 1)
        _explain_day(session, found, unit, serial, date.fromisoformat(day))
    elif key.startswith("standing:"):
        serial, month = key.removeprefix("standing:").rsplit(":", 1)
        found.meter = _unit_meter(session, unit, serial)
        if found.meter is not None:
            found.version = _version_on(session, estate, found.meter.utility, first_day(month), unit)
        found.note = ("The tariff's fixed monthly standing charge, taken once a month per unit and utility "
                      "(a meter replaced during the month does not charge it again).")
    elif key.startswith("solar:"):  # shared solar (issue 19): the unit's share of the month
        from app.billing.shared_solar import explain_share
        found.note = explain_share(session, transaction.id, estate)
    return found


def _unit_meter(session: Session, unit: Unit, serial: str) -> Meter | None:
    return session.scalar(select(Meter).where(Meter.serial == serial, Meter.unit_id == unit.id))


def _version_on(session: Session, estate: Estate, utility: str, day: date, unit: Unit) -> TariffVersion | None:
    """The version the unit's tariff class paid on a local date."""
    key = tariffs.unit_class_keys(session, {unit.id}).get(unit.id)
    return tariffs.version_on(session, estate.id, utility, key, day)


def _explain_reading(session: Session, found: Explanation, unit: Unit, serial: str, end: datetime) -> None:
    """A charge billed on one reading: the span from the reading before it, priced again."""
    meter = found.meter = _unit_meter(session, unit, serial)
    if meter is None:
        found.note = f"Meter {serial} is no longer on this unit."
        return
    reading = session.scalar(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at == end))
    # The span started at the meter's latest reading when the charge was posted: one that
    # arrived later (and split the span) is not part of this charge.
    earlier = select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at < end) \
        .order_by(Reading.taken_at.desc()).limit(1)
    previous = session.scalar(earlier.where(Reading.received_at <= found.transaction.recorded_at)) \
        or session.scalar(earlier)
    if reading is None or previous is None:
        from app.metering.archive import archive_of

        archive = archive_of(session, end) or (archive_of(session, previous.taken_at) if previous else None)
        found.note = (f"The readings behind this charge are archived: the month {archive.month:%B %Y} is in "
                      f"{archive.file_name} (staff can restore it)." if archive is not None
                      else "The readings behind this charge are no longer stored.")
        return
    found.readings = [previous, reading]
    found.span = (previous.taken_at, reading.taken_at)
    # Billing's own rule: a register wrap is consumption, a net-metered fall an export.
    quantity = validation.consumption_between(previous.register, reading.register, meter)
    if quantity < 0:
        _price_export(session, found, meter, reading.taken_at, -quantity)
        return
    found.quantity = quantity
    _price(session, found, meter, previous.taken_at, reading.taken_at, found.quantity)


def _price_export(session: Session, found: Explanation, meter: Meter, end: datetime, exported: Decimal) -> None:
    """An export credited on one reading: the quantity at the solar rate in force when it ended."""
    estate = found.estate
    found.exported = exported
    found.version = _version_on(session, estate, meter.utility, end.astimezone(estate.tz).date(),
                                meter.unit)
    if found.version is None or found.version.solar_rate is None:
        found.note = "No solar rate was in force, so this export was recorded without a credit."
        return
    found.solar_rate = Decimal(found.version.solar_rate)
    if estate.wallet_denomination == "units":
        found.note = "Units wallets get the export's value in units, at the tariff's unit price."
        return
    found.recomputed = quantize(exported * found.solar_rate, estate.currency)


def _explain_day(session: Session, found: Explanation, unit: Unit, serial: str, day: date) -> None:
    """A day's consumption billed at once (demo history): that day's readings and the tariff."""
    meter = found.meter = _unit_meter(session, unit, serial)
    if meter is None:
        return
    tz = found.estate.tz
    start, end = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    inside = select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at > start, Reading.taken_at <= end)
    first = session.scalar(inside.order_by(Reading.taken_at).limit(1))
    last = session.scalar(inside.order_by(Reading.taken_at.desc()).limit(1))
    count, quantity = session.execute(select(func.count(Reading.id), func.coalesce(func.sum(Reading.consumption), 0))
                                      .where(Reading.meter_id == meter.id, Reading.taken_at > start,
                                             Reading.taken_at <= end)).one()
    found.note = (f"This day's use was billed in one charge: {count} readings between local midnights. "
                  "The first and last are shown.")
    if first is None:
        found.note = "The readings behind this charge are archived."
        return
    found.readings = [first, last] if last is not None and last.id != first.id else [first]
    found.span = (start, end)
    found.quantity = Decimal(quantity)
    _price(session, found, meter, start, end, found.quantity)


def _price(session: Session, found: Explanation, meter: Meter, start: datetime, end: datetime,
           quantity: Decimal) -> None:
    """Re-run the tariff split over the span, with the month's use before it (inclining blocks)."""
    estate = found.estate
    tz = estate.tz
    found.version = _version_on(session, estate, meter.utility, start.astimezone(tz).date(), meter.unit)
    if estate.wallet_denomination == "units":
        found.note = found.note or "Units wallets are charged the quantity used; its price was paid at top-up."
        return
    prices = tariffs.unit_prices(session, estate.id, meter.unit_id, meter.utility)  # the unit's class
    used: dict[date, Decimal] = {}
    month = start.astimezone(tz).date().replace(day=1)
    # The month's use before the span counts the meters this one replaced (billing's rule).
    from app.billing.consumption import earlier_meters
    meter_ids = [meter.id, *(m for m, _ in earlier_meters(session, [meter.id]).get(meter.id, []))]
    while month <= end.astimezone(tz).date():
        month_begins = local_midnight(month, tz)
        used[month] = Decimal(session.scalar(select(func.coalesce(func.sum(Reading.consumption), 0)).where(
            Reading.meter_id.in_(meter_ids), Reading.taken_at > month_begins, Reading.taken_at <= start)) or 0)
        month = add_months(month, 1)
    try:
        found.charge_lines = tariffs.charge_lines(prices, tz, start, end, quantity, used)
    except tariffs.TariffError as error:
        found.note = f"This charge cannot be priced again: {error}."
        return
    found.recomputed = quantize(sum((line.amount for line in found.charge_lines), Decimal(0)), estate.currency)

