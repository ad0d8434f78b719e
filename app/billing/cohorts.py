"""Debt cohorts (A5): each fiscal year's top debtors of an estate, followed month by month.

On a configurable day after the estate's fiscal year starts (`cohort_day` days after the 1st
of `Estate.fiscal_year_start_month`), the top N debtors (`cohort_size`, default 200) become
that year's cohort, ranked by what they owe or, as BigMeter does, by what they used in the
year before (`cohort_rank`). A fiscal year is labelled by the calendar year it ends in: a
year that starts in October 2026 is FY2027 (a January start ends in the same year).

Every month each member's figures are snapshotted: the net balance of the unit's pockets and
arrears records, what it owes, what was billed (usage and standing charges) and what was
paid (top-ups, arrears recovery included, and arrears paid directly) in the month. Everything is read from the ledger,
as at the month's end in the estate's timezone (or now, for the month under way), so a
snapshot taken twice gives the same figures. Rows are upserted by (fiscal year, estate,
unit) and (month, estate, unit): a rerun changes nothing that has not changed. In units
estates pocket figures (kWh/kL) are valued at today's price per unit, like the credit limits.

A cohort may instead come from an **external billing database** (as BigMeter reads Oracle):
the estate's `cohort_source` setting holds a SQLAlchemy URL and a parameterised query (set
with `flask cohorts source`, never on a web form: the URL may carry a password). The URL may
be given as `env:VARNAME`: then only that name is stored, and the URL (with its password) is
read from the process environment each time the source is queried. The query
returns the columns `account, balance, debt, consumption, payments` for the accounts in
`:accounts`, an expanding IN list filled 100 at a time; it may also use `:estate` (the
estate's code), `:month` (the month's first day), `:start` and `:end` (its bounds, UTC).
Accounts match units by account number (else by unit number). Any driver SQLAlchemy has a
dialect for may be named in the URL: postgresql+psycopg (installed here), oracle+oracledb
(python-oracledb, thin mode needs no Oracle client), mssql+pyodbc, mysql+pymysql, sqlite.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, create_engine, func, select, text
from sqlalchemy.orm import Session

from app.billing import debt as debt_module
from app.estates.settings_catalog import setting_default
from app.jobs import job
from app.models import Account, Estate, LedgerTransaction, Posting, Unit, Wallet, utcnow
from app.models.arrears import ArrearsRecord
from app.models.cohorts import COHORT_RANKINGS, CohortMember, CohortSnapshot, DebtCohort
from app.money import quantize
from app.settings import get_setting, put_setting
from app.routing import whole_number

COHORT_DAY_KEY = "cohort_day"
COHORT_SIZE_KEY = "cohort_size"
COHORT_RANK_KEY = "cohort_rank"
COHORT_SOURCE_KEY = "cohort_source"
EXTERNAL_BATCH = 100  # accounts per external query (an expanding IN list)
CHUNK = 2000  # ids per query against our own database
BILLED_KINDS = ("consumption", "standing_charge")
PAID_KINDS = ("topup", "arrears_payment")
EXTERNAL_COLUMNS = ("account", "balance", "debt", "consumption", "payments")


class CohortError(ValueError):
    """A cohort that cannot be taken or snapshotted; the message says why."""


# --- fiscal years ----------------------------------------------------------------------------

def fiscal_year_of(day: date, start_month: int) -> int:
    """The label of the fiscal year `day` falls in: the calendar year that fiscal year ends in."""
    if start_month == 1:
        return day.year
    return day.year + 1 if day.month >= start_month else day.year


def fiscal_year_start(fiscal_year: int, start_month: int) -> date:
    """The first day of fiscal year `fiscal_year` (FY2027 with an October start: 1 October 2026)."""
    return date(fiscal_year if start_month == 1 else fiscal_year - 1, start_month, 1)


def fiscal_year_months(fiscal_year: int, start_month: int) -> list[date]:
    """The first day of each of the fiscal year's twelve months."""
    start = fiscal_year_start(fiscal_year, start_month)
    return [_add_months(start, n) for n in range(12)]


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def fiscal_year_text(fiscal_year: int) -> str:
    return f"FY{fiscal_year}"


def parse_month(text_value: str) -> date:
    """'YYYY-MM' as the month's first day; CohortError otherwise."""
    try:
        year, month = (int(part) for part in (text_value or "").strip().split("-"))
        return date(year, month, 1)
    except (TypeError, ValueError):
        raise CohortError(f"write the month as YYYY-MM, not {text_value!r}") from None


def parse_fiscal_year(text_value: str | int | None) -> int | None:
    """'FY2027', '2027' or 2027 as 2027; None for nothing; CohortError otherwise."""
    if text_value in (None, ""):
        return None
    typed = str(text_value).strip().upper().removeprefix("FY")
    year = whole_number(typed, 2000, 2100)
    if year is None:
        raise CohortError(f"write the fiscal year as FY2027 or 2027, not {text_value!r}")
    return year


@dataclass(frozen=True)
class CohortSettings:
    day: int  # days after the fiscal year starts
    size: int
    rank: str  # "owed" or "usage"
    source: dict | None  # {"url": ..., "query": ...} for an external billing database


def cohort_settings(session: Session, estate: Estate) -> CohortSettings:
    day = get_setting(session, COHORT_DAY_KEY, estate.id, default=setting_default(COHORT_DAY_KEY))
    size = get_setting(session, COHORT_SIZE_KEY, estate.id, default=setting_default(COHORT_SIZE_KEY))
    rank = get_setting(session, COHORT_RANK_KEY, estate.id, default=setting_default(COHORT_RANK_KEY))
    source = get_setting(session, COHORT_SOURCE_KEY, estate.id, default=setting_default(COHORT_SOURCE_KEY))
    return CohortSettings(int(day), int(size), rank if rank in COHORT_RANKINGS else "owed",
                          source if isinstance(source, dict) and source.get("url") else None)


def cohort_day(session: Session, estate: Estate, fiscal_year: int) -> date:
    """The local day the fiscal year's cohort is taken."""
    return (fiscal_year_start(fiscal_year, estate.fiscal_year_start_month)
            + timedelta(days=cohort_settings(session, estate).day))


def _local_midnight(estate: Estate, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=estate.tz).astimezone(UTC)


def month_bounds(estate: Estate, month: date, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The month's start and end in UTC (local midnights); the end is `now` while the month runs."""
    start = _local_midnight(estate, month)
    end = _local_midnight(estate, _add_months(month, 1))
    now = now or utcnow()
    return start, min(end, now)


# --- figures from the ledger ----------------------------------------------------------------

@dataclass
class Figures:
    balance: Decimal = Decimal("0")
    debt: Decimal = Decimal("0")
    consumption: Decimal = Decimal("0")
    payments: Decimal = Decimal("0")

    def rounded(self, currency: str) -> Figures:
        return Figures(*(quantize(value, currency) for value in
                         (self.balance, self.debt, self.consumption, self.payments)))


def _chunks(ids: list, size: int) -> Iterable[list]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _unit_accounts(session: Session, unit_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """Every pocket and arrears-record account of these units: account id -> (unit id, is a pocket)."""
    found: dict[int, tuple[int, bool]] = {}
    for chunk in _chunks(unit_ids, CHUNK):
        for account_id, unit_id in session.execute(
                select(Account.id, Wallet.unit_id).join(Wallet, Wallet.id == Account.wallet_id)
                .where(Wallet.unit_id.in_(chunk), Account.kind == "pocket")):
            found[account_id] = (unit_id, True)
        for account_id, unit_id in session.execute(
                select(ArrearsRecord.account_id, ArrearsRecord.unit_id)
                .where(ArrearsRecord.unit_id.in_(chunk), ArrearsRecord.account_id.is_not(None))):
            found[account_id] = (unit_id, False)
    return found


def _sums(session: Session, account_ids: list[int], end: datetime, start: datetime | None = None,
          kinds: tuple[str, ...] | None = None, sign: int = 0) -> dict[int, Decimal]:
    """Per account, the sum of its postings before `end` (from `start`, of these kinds, of one sign)."""
    found: dict[int, Decimal] = {}
    for chunk in _chunks(account_ids, CHUNK):
        query = (select(Posting.account_id, func.sum(Posting.amount))
                 .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                 .where(Posting.account_id.in_(chunk), LedgerTransaction.occurred_at < end)
                 .group_by(Posting.account_id))
        if start is not None:
            query = query.where(LedgerTransaction.occurred_at >= start)
        if kinds is not None:
            query = query.where(LedgerTransaction.kind.in_(kinds))
        if sign:
            query = query.where(Posting.amount > 0 if sign > 0 else Posting.amount < 0)
        found.update({account_id: Decimal(total or 0) for account_id, total in session.execute(query)})
    return found


def unit_figures(session: Session, estate: Estate, unit_ids: Iterable[int], start: datetime, end: datetime
                 ) -> dict[int, Figures]:
    """Each unit's balance and debt as at `end`, and what was billed and paid from `start` to `end`."""
    unit_ids = sorted(set(unit_ids))
    accounts = _unit_accounts(session, unit_ids)
    ids = sorted(accounts)
    balances = _sums(session, ids, end)
    billed = _sums(session, ids, end, start, BILLED_KINDS, sign=-1)
    paid = _sums(session, ids, end, start, PAID_KINDS, sign=1)
    rates: dict[int, Decimal | None] = {}
    if estate.wallet_denomination == "units":
        pockets = session.scalars(select(Account).where(Account.id.in_(
            [a for a, (_, pocket) in accounts.items() if pocket]))).all()
        rates = debt_module.today_rates(session, [(p, estate, accounts[p.id][0]) for p in pockets])
    figures = {unit_id: Figures() for unit_id in unit_ids}
    for account_id, (unit_id, is_pocket) in accounts.items():
        rate = Decimal(rates.get(account_id) or 0) if is_pocket and rates else Decimal("1")
        balance = balances.get(account_id, Decimal("0")) * rate
        row = figures[unit_id]
        row.balance += balance
        row.debt += max(Decimal("0"), -balance)
        row.consumption += -billed.get(account_id, Decimal("0")) * rate
        row.payments += paid.get(account_id, Decimal("0")) * rate
    return {unit_id: row.rounded(estate.currency) for unit_id, row in figures.items()}


# --- the external billing database ----------------------------------------------------------

def _unit_keys(session: Session, estate: Estate, unit_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Each unit's key in the external database: its account number, else its number."""
    query = select(Unit.id, Unit.number, Unit.account_number).where(Unit.estate_id == estate.id)
    if unit_ids is not None:
        query = query.where(Unit.id.in_(set(unit_ids)))
    return {(account or number): unit_id for unit_id, number, account in session.execute(query)}


ENV_PREFIX = "env:"


def _env_name(url: str) -> str | None:
    """The variable named by an `env:VARNAME` URL (None for a literal URL)."""
    if not url.startswith(ENV_PREFIX):
        return None
    name = url[len(ENV_PREFIX):].strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
        raise CohortError("after env: give the name of an environment variable, like env:BILLING_DB_URL")
    return name


def source_url(url: str) -> str:
    """The URL to connect to: a literal one as stored, or the value of the `env:VARNAME` variable."""
    import os

    name = _env_name(url)
    if name is None:
        return url
    value = os.environ.get(name, "").strip()
    if not value:
        raise CohortError(f"the external source's URL is read from the environment variable {name}, "
                          "which is not set")
    return value


def external_figures(estate: Estate, source: dict, keys: dict[str, int], month: date,
                     start: datetime, end: datetime) -> dict[int, Figures]:
    """Figures for these units read from the external database, EXTERNAL_BATCH accounts a query."""
    sql = (source.get("query") or "").strip()
    if ":accounts" not in sql:
        raise CohortError("the external query must select `WHERE account IN :accounts`")
    statement = text(sql).bindparams(bindparam("accounts", expanding=True))
    given = {"estate": estate.code, "month": month, "start": start, "end": end}
    wanted = {name: value for name, value in given.items() if f":{name}" in sql}
    url = source_url(source["url"])
    try:
        engine = create_engine(url, pool_pre_ping=False)
    except Exception:  # noqa: BLE001 - an unparsable URL (from the environment): never echo it, it may hold a password
        raise CohortError("the external source's URL is not a SQLAlchemy URL") from None
    found: dict[int, Figures] = {}
    try:
        with engine.connect() as connection:
            accounts = sorted(keys)
            for batch in _chunks(accounts, EXTERNAL_BATCH):
                for row in connection.execute(statement, {"accounts": batch, **wanted}).mappings():
                    missing = [column for column in EXTERNAL_COLUMNS if column not in row]
                    if missing:
                        raise CohortError(f"the external query returns no {', '.join(missing)} column")
                    unit_id = keys.get(str(row["account"]))
                    if unit_id is None:
                        continue
                    found[unit_id] = Figures(*(Decimal(str(row[column] or 0)) for column in EXTERNAL_COLUMNS[1:])
                                             ).rounded(estate.currency)
            connection.rollback()  # read only
    except CohortError:
        raise
    except Exception as error:  # noqa: BLE001 - any driver's error is the source's problem, said plainly
        raise CohortError(f"the external billing database refused: {type(error).__name__}: "
                          f"{str(error).splitlines()[0][:200]}") from None
    finally:
        engine.dispose()
    return found


def set_external_source(session: Session, estate: Estate, url: str | None, query: str | None, *,
                        user_id: int | None = None) -> None:
    """Store (or, with no URL, clear) the estate's external cohort source; audited; commits once."""
    from sqlalchemy.engine import make_url

    from app.audit import record as audit

    from app.models import Setting

    shown: dict = {"external": False}
    if url:
        url = url.strip()
        name = _env_name(url)
        if name is not None:
            url, hidden = f"{ENV_PREFIX}{name}", f"{ENV_PREFIX}{name}"  # only the variable's name is kept
        else:
            try:
                hidden = make_url(url).render_as_string(hide_password=True)
            except Exception:  # noqa: BLE001 - SQLAlchemy's ArgumentError and others
                raise CohortError("not a SQLAlchemy URL (like oracle+oracledb://user:password@host/?service_name=X) "
                                  "nor env:VARNAME") from None
        if ":accounts" not in (query or ""):
            raise CohortError("the query must select `WHERE account IN :accounts`")
        value = {"url": url, "query": query}
        shown = {"external": True, "url": hidden, "query": query}
    else:
        value = None
    # Stored without put_setting, whose audit row would keep the URL's password: this audit hides it.
    row = session.scalar(select(Setting).where(Setting.key == COHORT_SOURCE_KEY, Setting.estate_id == estate.id))
    if row is None:
        session.add(Setting(key=COHORT_SOURCE_KEY, value=value, estate_id=estate.id))
    else:
        row.value = value
    audit(session, "cohort.source", estate, new=shown, estate_id=estate.id)
    session.commit()


# --- taking a cohort --------------------------------------------------------------------------

@dataclass
class CohortReport:
    cohort: DebtCohort
    members: int
    added: int = 0
    removed: int = 0
    unchanged: int = 0


def _ranking(session: Session, estate: Estate, settings: CohortSettings, taken_on: date
             ) -> tuple[list[tuple[int, Decimal, Decimal]], str]:
    """(unit, owed, usage) of the estate's debtors on `taken_on`, best first, and the source used."""
    end = _local_midnight(estate, taken_on + timedelta(days=1))
    year_before = _local_midnight(estate, taken_on - timedelta(days=365))
    if settings.source:
        keys = _unit_keys(session, estate)
        month = taken_on.replace(day=1)
        figures = external_figures(estate, settings.source, keys, month, _local_midnight(estate, month), end)
        source = "external"
    else:
        unit_ids = list(session.scalars(select(Unit.id).where(Unit.estate_id == estate.id)))
        figures = unit_figures(session, estate, unit_ids, year_before, end)
        source = "ledger"
    numbers = dict(session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)).all())
    debtors = [(unit_id, row.debt, row.consumption) for unit_id, row in figures.items() if row.debt > 0]
    position = 1 if settings.rank == "owed" else 2
    debtors.sort(key=lambda d: (-d[position], -d[1], numbers.get(d[0], "")))
    return debtors[:settings.size], source


def take_cohort(session: Session, estate: Estate, fiscal_year: int | None = None, *,
                user_id: int | None = None, now: datetime | None = None) -> CohortReport:
    """Take (or retake: same day, same members) the fiscal year's cohort; audited; commits once.

    Without a fiscal year, the one under way in the estate today. A fiscal year whose cohort
    day has not come yet is refused.
    """
    from app.audit import record as audit

    now = now or utcnow()
    today = now.astimezone(estate.tz).date()
    fiscal_year = fiscal_year or fiscal_year_of(today, estate.fiscal_year_start_month)
    taken_on = cohort_day(session, estate, fiscal_year)
    if taken_on > today:
        raise CohortError(f"the {fiscal_year_text(fiscal_year)} cohort of {estate.code} is taken on "
                          f"{taken_on.isoformat()}, not before")
    settings = cohort_settings(session, estate)
    ranked, source = _ranking(session, estate, settings, taken_on)
    cohort = session.scalar(select(DebtCohort).where(DebtCohort.fiscal_year == fiscal_year,
                                                     DebtCohort.estate_id == estate.id))
    if cohort is None:
        cohort = DebtCohort(estate_id=estate.id, fiscal_year=fiscal_year, taken_on=taken_on,
                            ranked_by=settings.rank, size=settings.size, source=source)
        session.add(cohort)
        session.flush()
    elif (cohort.taken_on, cohort.ranked_by, cohort.size, cohort.source) != (taken_on, settings.rank,
                                                                           settings.size, source):
        cohort.taken_on, cohort.ranked_by, cohort.size, cohort.source = taken_on, settings.rank, settings.size, source
        cohort.updated_at = now
    existing = {m.unit_id: m for m in session.scalars(select(CohortMember).where(
        CohortMember.fiscal_year == fiscal_year, CohortMember.estate_id == estate.id))}
    report = CohortReport(cohort, len(ranked))
    for rank, (unit_id, owed, usage) in enumerate(ranked, start=1):
        member = existing.pop(unit_id, None)
        if member is None:
            session.add(CohortMember(cohort_id=cohort.id, fiscal_year=fiscal_year, estate_id=estate.id,
                                     unit_id=unit_id, rank=rank, owed=owed, usage=usage))
            report.added += 1
        elif (member.rank, quantize(member.owed, estate.currency), quantize(member.usage, estate.currency)) \
                != (rank, owed, usage):
            member.rank, member.owed, member.usage = rank, owed, usage
            report.added += 1
        else:
            report.unchanged += 1
    for member in existing.values():  # no longer in the top N (the ledger was corrected since)
        session.delete(member)
        report.removed += 1
    session.flush()
    if report.added or report.removed:
        audit(session, "cohort.take", cohort, new={"fiscal_year": fiscal_year, "members": report.members,
                                                   "ranked_by": settings.rank, "source": source},
              estate_id=estate.id)
    session.commit()
    return report


# --- monthly snapshots ------------------------------------------------------------------------

@dataclass
class SnapshotReport:
    cohort: DebtCohort
    month: date
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return (f"{fiscal_year_text(self.cohort.fiscal_year)} {self.month:%Y-%m}: {self.inserted} new, "
                f"{self.updated} updated, {self.unchanged} unchanged")


def snapshot_month(session: Session, estate: Estate, month: date | str, *, now: datetime | None = None
                   ) -> SnapshotReport:
    """Snapshot every member of the month's fiscal-year cohort for the month; commits once.

    Upserts by (month, estate, unit): a row whose figures are the same is left alone.
    """
    now = now or utcnow()
    month = parse_month(month) if isinstance(month, str) else month.replace(day=1)
    fiscal_year = fiscal_year_of(month, estate.fiscal_year_start_month)
    cohort = session.scalar(select(DebtCohort).where(DebtCohort.fiscal_year == fiscal_year,
                                                     DebtCohort.estate_id == estate.id))
    if cohort is None:
        raise CohortError(f"{estate.code} has no {fiscal_year_text(fiscal_year)} cohort yet: "
                          f"run `flask cohorts init --estate {estate.code} --fiscal-year {fiscal_year}`")
    start, end = month_bounds(estate, month, now)
    if start >= now:
        raise CohortError(f"{month:%Y-%m} has not started yet in {estate.code}")
    unit_ids = list(session.scalars(select(CohortMember.unit_id).where(CohortMember.cohort_id == cohort.id)))
    settings = cohort_settings(session, estate)
    if cohort.source == "external" and settings.source:
        figures = external_figures(estate, settings.source, _unit_keys(session, estate, unit_ids), month, start, end)
    else:
        figures = unit_figures(session, estate, unit_ids, start, end)
    existing = {s.unit_id: s for s in session.scalars(select(CohortSnapshot).where(
        CohortSnapshot.month == month, CohortSnapshot.estate_id == estate.id))}
    report = SnapshotReport(cohort, month)
    for unit_id in unit_ids:
        row = figures.get(unit_id, Figures())
        values = (row.balance, row.debt, row.consumption, row.payments)
        snapshot = existing.get(unit_id)
        if snapshot is None:
            session.add(CohortSnapshot(cohort_id=cohort.id, month=month, estate_id=estate.id, unit_id=unit_id,
                                       balance=row.balance, debt=row.debt, consumption=row.consumption,
                                       payments=row.payments, taken_at=now))
            report.inserted += 1
        elif tuple(quantize(v, estate.currency) for v in (snapshot.balance, snapshot.debt, snapshot.consumption,
                                                           snapshot.payments)) != values:
            snapshot.balance, snapshot.debt, snapshot.consumption, snapshot.payments = values
            snapshot.taken_at = now
            report.updated += 1
        else:
            report.unchanged += 1
    session.commit()
    return report


# --- the daily job ------------------------------------------------------------------------------

def run_cohorts(session: Session, estate: Estate, *, now: datetime | None = None) -> list[str]:
    """Take the fiscal year's cohort once its day has come, and snapshot last month and this one.

    Each step commits on its own and is idempotent, so the job may run every day."""
    now = now or utcnow()
    today = now.astimezone(estate.tz).date()
    fiscal_year = fiscal_year_of(today, estate.fiscal_year_start_month)
    notes = []
    has_cohort = session.scalar(select(DebtCohort.id).where(DebtCohort.fiscal_year == fiscal_year,
                                                            DebtCohort.estate_id == estate.id))
    if has_cohort is None and cohort_day(session, estate, fiscal_year) <= today:
        report = take_cohort(session, estate, fiscal_year, now=now)
        notes.append(f"{fiscal_year_text(fiscal_year)} cohort taken: {report.members} members")
    this_month = today.replace(day=1)
    for month in (_add_months(this_month, -1), this_month):
        year = fiscal_year_of(month, estate.fiscal_year_start_month)
        if session.scalar(select(DebtCohort.id).where(DebtCohort.fiscal_year == year,
                                                      DebtCohort.estate_id == estate.id)) is None:
            continue
        notes.append(snapshot_month(session, estate, month, now=now).summary())
    return notes


@job("debt_cohorts")
def cohorts_job(session: Session, progress) -> str:
    """Every estate's cohort taken on its day and snapshotted for last month and this (A5)."""
    estates = list(session.scalars(select(Estate).order_by(Estate.id)))
    progress.set_total(len(estates))
    done = 0
    for estate in estates:
        try:
            notes = run_cohorts(session, estate)
            done += bool(notes)
        except CohortError as error:
            session.rollback()
            progress.error(f"{estate.code}: {error}")
        progress.step()
    return f"{done} estates' cohorts brought up to date"


# --- what the cohort page shows -----------------------------------------------------------------

@dataclass
class MonthProgress:
    month: date
    members: int  # snapshotted
    debt: Decimal
    balance: Decimal
    consumption: Decimal
    payments: Decimal
    reduced_percent: Decimal | None  # how much of the debt when the cohort was taken is gone (negative: grew)
    cleared: int  # members owing nothing

    @property
    def label(self) -> str:
        return self.month.strftime("%b %Y")


@dataclass
class CohortView:
    cohort: DebtCohort
    owed_at_start: Decimal
    months: list[MonthProgress] = field(default_factory=list)
    members: list[tuple[CohortMember, Unit, CohortSnapshot | None]] = field(default_factory=list)

    @property
    def latest(self) -> MonthProgress | None:
        return self.months[-1] if self.months else None


def cohorts_of(session: Session, estate: Estate) -> list[DebtCohort]:
    return list(session.scalars(select(DebtCohort).where(DebtCohort.estate_id == estate.id)
                                .order_by(DebtCohort.fiscal_year.desc())))


def cohort_view(session: Session, cohort: DebtCohort) -> CohortView:
    """The cohort's progress month by month (its debt against what it owed when taken) and its members."""
    members = session.execute(select(CohortMember, Unit).join(Unit, Unit.id == CohortMember.unit_id)
                              .where(CohortMember.cohort_id == cohort.id).order_by(CohortMember.rank)).all()
    owed = sum((m.owed for m, _ in members), Decimal("0"))
    view = CohortView(cohort, owed)
    snapshots = list(session.scalars(select(CohortSnapshot).where(CohortSnapshot.cohort_id == cohort.id)
                                     .order_by(CohortSnapshot.month)))
    by_month: dict[date, list[CohortSnapshot]] = {}
    for snapshot in snapshots:
        by_month.setdefault(snapshot.month, []).append(snapshot)
    for month, rows in sorted(by_month.items()):
        debt = sum((r.debt for r in rows), Decimal("0"))
        view.months.append(MonthProgress(
            month, len(rows), debt, sum((r.balance for r in rows), Decimal("0")),
            sum((r.consumption for r in rows), Decimal("0")), sum((r.payments for r in rows), Decimal("0")),
            ((owed - debt) * 100 / owed).quantize(Decimal("0.1")) if owed else None,
            sum(1 for r in rows if r.debt <= 0)))
    latest = {s.unit_id: s for s in by_month.get(view.months[-1].month, [])} if view.months else {}
    view.members = [(member, unit, latest.get(unit.id)) for member, unit in members]
    return view


# --- demo data ----------------------------------------------------------------------------------

def seed_demo_cohort(session: Session, estate: Estate) -> DebtCohort | None:
    """Demo (issue 16): the estate's cohort of the fiscal year under way and a snapshot of each month
    since it was taken, so the cohort page shows progress. The demo's debts are at most a few months
    old (the demo's ledger begins 130 days back), so the estate's cohort day is set to 60 days ago, or
    the fiscal year's first day if that is later: a few months of progress to show. Commits (each step does)."""
    today = utcnow().astimezone(estate.tz).date()
    fiscal_year = fiscal_year_of(today, estate.fiscal_year_start_month)
    days_in = (today - fiscal_year_start(fiscal_year, estate.fiscal_year_start_month)).days
    put_setting(session, COHORT_DAY_KEY, max(0, days_in - 60), estate.id)
    session.commit()
    cohort = take_cohort(session, estate, fiscal_year).cohort
    _demo_arrears_payments(session, estate, cohort, today)
    month = cohort.taken_on.replace(day=1)
    while month <= today:
        snapshot_month(session, estate, month)
        month = _add_months(month, 1)
    return cohort


def _demo_arrears_payments(session: Session, estate: Estate, cohort: DebtCohort, today: date) -> None:
    """Every other member pays a tenth of each open arrears record on the 15th of each month since the
    cohort was taken (the demo keeps recovery on top-up off), so the debt falls month by month."""
    from app.billing.arrears import pay_arrears
    from app.ledger.accounts import system_account

    clearing = system_account(session, estate, "clearing", "payments")
    members = list(session.scalars(select(CohortMember.unit_id).where(CohortMember.cohort_id == cohort.id)
                                   .order_by(CohortMember.rank)))[::2]
    records = session.scalars(select(ArrearsRecord).where(ArrearsRecord.unit_id.in_(members),
                                                          ArrearsRecord.status == "open")).all()
    month = cohort.taken_on.replace(day=1)
    while True:
        paid_on = month.replace(day=15)
        if paid_on <= cohort.taken_on:
            month = _add_months(month, 1)
            continue
        if paid_on >= today:
            break
        for record in records:
            pay_arrears(session, record, quantize(record.amount / 10, estate.currency), source=clearing,
                        key=f"demo:cohort:{record.id}:{paid_on:%Y-%m}", memo="Arrears instalment",
                        occurred_at=datetime.combine(paid_on, time(10), tzinfo=estate.tz).astimezone(UTC))
        month = _add_months(month, 1)
    session.commit()
