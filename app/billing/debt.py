"""What each unit owes and since when (A4): credit limits per pocket and the aging of debts.

A debt is either a wallet pocket below zero or an open arrears record (whatever its source:
move-out, levy, migration, manual). Both are read from the ledger, never from a counter that
drifts: a pocket's "in debt since" is the last moment its running sum of postings (in ledger
order) crossed from zero or above to below zero. app.ledger keeps it on the pocket
(`Account.in_debt_since`) in the same transaction as the postings and the cached balance, and
`ledger verify` recomputes it from the postings, so the daily job reads it instead of
rescanning every debtor's history; a record's is the moment it was opened. Days in debt count local dates in the estate's
timezone, and fall into the buckets current (under 30 days), 30, 60, 90 and 120+.

Amounts owed are money. In estates whose wallets hold kWh/kL, a negative units balance is
valued at the unit's tariff on the day it went negative (C1: the price in force then).

Credit limits are money too: how far a pocket may go below zero before credit control cuts
it (electricity) or flags it (water, held at its limit, never cut). A pocket's own limit
(`PocketCreditLimit`, set by agents and staff) wins over the estate's default: the setting
`credit_limit`, and for water the existing `water_credit_limit` (kL in units estates, valued
at today's price).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import tariffs
from app.estates.settings_catalog import setting_default
from app.models import Account, Estate, Person, Tenancy, Unit, Wallet, utcnow
from app.models.arrears import ArrearsRecord
from app.models.debt import PocketCreditLimit
from app.money import format_amount, parse_amount, MoneyError, quantize
from app.settings import get_setting
from app.sql_arrays import one_of

CREDIT_LIMIT_KEY = "credit_limit"
WATER_LIMIT_KEY = "water_credit_limit"
BUCKETS = ("current", "30", "60", "90", "120")
BUCKET_LABELS = {"current": _l("Under 30 days"), "30": _l("30-59 days"), "60": _l("60-89 days"), "90": _l("90-119 days"),
                 "120": _l("120 days and more")}


class CreditLimitError(ValueError):
    """A credit limit that cannot be saved; `errors` is keyed by field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def bucket_of(days: int) -> str:
    """The aging bucket of a debt `days` old (local dates)."""
    for bucket, floor in (("120", 120), ("90", 90), ("60", 60), ("30", 30)):
        if days >= floor:
            return bucket
    return "current"


# --- credit limits -------------------------------------------------------------------------

def estate_default_limit(session: Session, estate: Estate, utility: str) -> Decimal:
    """The estate's credit limit for a utility's pockets, in the pocket's own terms (money, or kL for
    water in units estates, as the water setting has always been)."""
    if utility == "water":  # each key read by name, so the settings catalogue's test sees both
        value = get_setting(session, WATER_LIMIT_KEY, estate.id, default=setting_default(WATER_LIMIT_KEY))
    else:
        value = get_setting(session, CREDIT_LIMIT_KEY, estate.id, default=setting_default(CREDIT_LIMIT_KEY))
    return abs(Decimal(str(value or 0)))


def pocket_overrides(session: Session, account_ids: Iterable[int]) -> dict[int, Decimal]:
    """The pockets' own credit limits (money), where one is set."""
    ids = set(account_ids)
    if not ids:
        return {}
    return dict(session.execute(select(PocketCreditLimit.account_id, PocketCreditLimit.amount)
                                .where(one_of(session, PocketCreditLimit.account_id, ids))).all())


def money_limits(session: Session, rows: Iterable[tuple[Account, Estate]], rates: dict[int, Decimal | None]
                 ) -> dict[int, Decimal]:
    """Each pocket's credit limit in money: its own, else the estate's (a kL water default valued
    at today's `rates[pocket id]`; with no price it is 0)."""
    rows = list(rows)
    own = pocket_overrides(session, [pocket.id for pocket, _ in rows])
    limits: dict[int, Decimal] = {}
    defaults: dict[tuple[int, str], Decimal] = {}  # one settings read per estate and utility
    for pocket, estate in rows:
        if pocket.id in own:
            limits[pocket.id] = Decimal(own[pocket.id])
            continue
        key = (estate.id, pocket.utility)
        if key not in defaults:
            defaults[key] = estate_default_limit(session, estate, pocket.utility)
        default = defaults[key]
        if pocket.utility == "water" and estate.wallet_denomination == "units":
            rate = rates.get(pocket.id)
            default = default * rate if rate else default  # no price: compared in kL, like the balance
        limits[pocket.id] = default
    return limits


def set_pocket_limit(session: Session, pocket: Account, text: str | None, *, user_id: int | None = None
                     ) -> PocketCreditLimit | None:
    """Set (or, for an empty value, remove) a pocket's own credit limit; audited; commits once."""
    from app.audit import record as audit

    estate = session.get(Estate, pocket.estate_id)
    existing = session.scalar(select(PocketCreditLimit).where(PocketCreditLimit.account_id == pocket.id))
    old = {"limit": str(existing.amount) if existing else None}
    typed = (text or "").strip()
    if not typed:
        if existing is None:
            return None
        session.delete(existing)
        audit(session, "credit_limit.clear", pocket, old=old, new={"limit": None}, estate_id=estate.id)
        session.commit()
        return None
    try:
        amount = parse_amount(typed, estate.currency)
    except MoneyError as error:
        raise CreditLimitError({f"limit_{pocket.id}": str(error)}) from None
    if amount > Decimal("10000000"):
        raise CreditLimitError({f"limit_{pocket.id}": "at most 10 000 000"})
    if existing is None:
        existing = PocketCreditLimit(account_id=pocket.id, amount=amount, set_by_user_id=user_id)
        session.add(existing)
    else:
        existing.amount, existing.set_by_user_id, existing.set_at = amount, user_id, utcnow()
    session.flush()
    audit(session, "credit_limit.set", pocket, old=old, new={"limit": str(amount)}, estate_id=estate.id)
    session.commit()
    return existing


def save_pocket_limits(session: Session, pockets: list[Account], typed: dict[str, str], *,
                       user_id: int | None = None) -> int:
    """Set the limits typed for these pockets (`limit_<pocket id>` fields present in `typed`), then let
    credit control act on them (a new limit may restore or cut supply); commits once at the end (each
    limit is saved as it is set). Returns how many changed; CreditLimitError stops at the first bad one."""
    from app.metering.credit_control import after_pocket_change

    changed = 0
    for pocket in pockets:
        field = f"limit_{pocket.id}"
        if field not in typed:
            continue
        before = pocket_overrides(session, [pocket.id]).get(pocket.id)
        saved = set_pocket_limit(session, pocket, typed[field][:40], user_id=user_id)
        changed += (saved.amount if saved else None) != before
    after_pocket_change(session, [p.id for p in pockets])
    session.commit()
    return changed


def today_rates(session: Session, pockets: list[tuple[Account, Estate, int]]) -> dict[int, Decimal | None]:
    """Today's unit price for each units-estate pocket (money per kWh/kL); None with no price."""
    units = [(p, e, u) for p, e, u in pockets if e.wallet_denomination == "units"]
    if not units:
        return {}
    prices = tariffs.class_prices(session, {e.id for _, e, _ in units})
    classes = tariffs.unit_class_keys(session, {u for _, _, u in units})
    rates = {}
    for pocket, estate, unit_id in units:
        versions = tariffs.prices_for(prices, estate.id, pocket.utility, classes.get(unit_id))
        rates[pocket.id] = tariffs.unit_price(tariffs.price_on(versions, utcnow().astimezone(estate.tz).date()))
    return rates


# --- aging ---------------------------------------------------------------------------------

def pockets_in_debt_since(session: Session, account_ids: Iterable[int]) -> dict[int, datetime]:
    """For each pocket below zero, when its running balance last went from zero or above to below
    zero, recomputed from its postings (what `ledger verify` checks `Account.in_debt_since` against)."""
    from app.ledger.verify import in_debt_since_from_postings

    ids = set(account_ids)
    return in_debt_since_from_postings(session, account_ids=ids) if ids else {}


def _aware(moment):
    from datetime import UTC

    if isinstance(moment, str):  # SQLite hands an aggregate's datetime back as text
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Debt:
    """One thing owed: a pocket below zero or an open arrears record."""

    estate: Estate
    unit: Unit | None
    who: str  # the tenant(s) today, or the record's person
    kind: str  # "pocket" or "record"
    utility: str | None
    source: str  # "pocket" or the record's source
    owed: Decimal  # money, positive
    since: date  # local date the debt began
    days: int
    account_id: int
    record_id: int | None = None
    balance_shown: str = ""  # units estates: the kWh/kL owed

    @property
    def bucket(self) -> str:
        return bucket_of(self.days)

    @property
    def owed_shown(self) -> str:
        return format_amount(self.owed, self.estate.currency)


def debts(session: Session, estates: Iterable[Estate], *, unit_ids: Iterable[int] | None = None,
          today: date | None = None, now: datetime | None = None) -> list[Debt]:
    """Every debt in the estates (or of these units), oldest first."""
    estates = {estate.id: estate for estate in estates}
    if not estates:
        return []
    now = now or utcnow()
    # Plain rows, not Account objects: the daily job reads every debtor's pocket (10,000 and more).
    query = (select(Account.id, Account.estate_id, Account.commodity, Account.utility, Account.balance,
                    Account.in_debt_since, Wallet.unit_id).join(Wallet, Wallet.id == Account.wallet_id)
             .where(Account.estate_id.in_(estates), Account.kind == "pocket", Account.balance < 0))
    records = (select(ArrearsRecord).join(Account, Account.id == ArrearsRecord.account_id)
               .where(ArrearsRecord.estate_id.in_(estates), ArrearsRecord.status == "open", Account.balance < 0))
    if unit_ids is not None:
        wanted = set(unit_ids)
        query = query.where(one_of(session, Wallet.unit_id, wanted))
        records = records.where(one_of(session, ArrearsRecord.unit_id, wanted))
    pockets = [(row, row.unit_id) for row in session.execute(query)]
    open_records = list(session.scalars(records))
    units = {unit.id: unit for unit in session.scalars(select(Unit).where(one_of(session, Unit.id,
        {u for _, u in pockets} | {r.unit_id for r in open_records if r.unit_id})))}
    tenants = tenant_names(session, set(units))
    since = {pocket.id: _aware(pocket.in_debt_since) for pocket, _ in pockets if pocket.in_debt_since is not None}
    unkept = [pocket.id for pocket, _ in pockets if pocket.in_debt_since is None]
    if unkept:  # not kept (a pocket below zero whose date was never recorded): from its postings
        since.update(pockets_in_debt_since(session, unkept))
    priced = _valuation(session, [(p, estates[p.estate_id], u, since.get(p.id, now)) for p, u in pockets])
    found: list[Debt] = []
    for pocket, unit_id in pockets:
        estate = estates[pocket.estate_id]
        began = since.get(pocket.id, now)
        local = began.astimezone(estate.tz).date()
        days = ((today or now.astimezone(estate.tz).date()) - local).days
        owed, shown = -pocket.balance, ""
        if estate.wallet_denomination == "units":
            shown = format_amount(-pocket.balance, pocket.commodity)
            owed = quantize(-pocket.balance * (priced.get(pocket.id) or 0), estate.currency)
        found.append(Debt(estate, units.get(unit_id), tenants.get(unit_id, ""), "pocket", pocket.utility, "pocket",
                          quantize(owed, estate.currency), local, days, pocket.id, balance_shown=shown))
    people = dict(session.execute(select(Person.id, Person.full_name).where(
        one_of(session, Person.id, {r.person_id for r in open_records}))).all()) if open_records else {}
    for record in open_records:
        estate = estates[record.estate_id]
        local = record.opened_at.astimezone(estate.tz).date()
        days = ((today or now.astimezone(estate.tz).date()) - local).days
        found.append(Debt(estate, units.get(record.unit_id), people.get(record.person_id, ""), "record",
                          record.utility, record.source, record.outstanding, local, days, record.account_id,
                          record_id=record.id))
    found.sort(key=lambda d: (d.since, d.estate.id, d.unit.number if d.unit else "", d.account_id))
    return found


def _valuation(session: Session, pockets: list[tuple[Account, Estate, int, datetime]]) -> dict[int, Decimal | None]:
    """Units estates: the price per kWh/kL on the local day each pocket went negative."""
    units = [(p, e, u, at) for p, e, u, at in pockets if e.wallet_denomination == "units"]
    if not units:
        return {}
    prices = tariffs.class_prices(session, {e.id for _, e, _, _ in units})
    classes = tariffs.unit_class_keys(session, {u for _, _, u, _ in units})
    return {p.id: tariffs.unit_price(tariffs.price_on(
        tariffs.prices_for(prices, e.id, p.utility, classes.get(u)), at.astimezone(e.tz).date()))
        for p, e, u, at in units}


def tenant_names(session: Session, unit_ids: set[int]) -> dict[int, str]:
    """The names of each unit's tenants today, comma-separated."""
    if not unit_ids:
        return {}
    today = date.today()
    names: dict[int, list[str]] = {}
    for unit_id, name in session.execute(
            select(Tenancy.unit_id, Person.full_name).join(Person, Person.id == Tenancy.person_id)
            .where(one_of(session, Tenancy.unit_id, unit_ids), Tenancy.move_in <= today,
                   (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today)).order_by(Person.full_name)):
        names.setdefault(unit_id, []).append(name)
    return {unit_id: ", ".join(found) for unit_id, found in names.items()}


@dataclass
class UnitDebt:
    """A unit's debts together: the ladder's and the tenant dashboard's view."""

    unit_id: int
    owed: Decimal
    since: date
    days: int
    items: list[Debt]


def unit_debts(found: list[Debt]) -> dict[int, UnitDebt]:
    """Debts summed per unit (a record with no unit is the person's, not a unit's: left out)."""
    units: dict[int, UnitDebt] = {}
    for debt in found:
        if debt.unit is None:
            continue
        total = units.get(debt.unit.id)
        if total is None:
            units[debt.unit.id] = UnitDebt(debt.unit.id, debt.owed, debt.since, debt.days, [debt])
        else:
            total.owed += debt.owed
            total.items.append(debt)
            if debt.since < total.since:
                total.since, total.days = debt.since, debt.days
    return units


def bucket_totals(found: list[Debt]) -> list[tuple[str, str, Decimal, int]]:
    """Per bucket: key, label, money owed and how many debts (one currency per estate page)."""
    totals = {bucket: [Decimal("0"), 0] for bucket in BUCKETS}
    for debt in found:
        totals[debt.bucket][0] += debt.owed
        totals[debt.bucket][1] += 1
    return [(bucket, BUCKET_LABELS[bucket], totals[bucket][0], totals[bucket][1]) for bucket in BUCKETS]
