"""Reads about estates: the recent financial periods and their status; the administration's unit list."""
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Estate, FinancialPeriod, Unit


def recent_periods(session: Session, estate: Estate, months: int = 6) -> list[tuple[str, str]]:
    """The estate's last `months` periods (newest first) with their status."""
    from app.models import utcnow

    today = utcnow().astimezone(estate.tz)
    year, month = today.year, today.month
    names = []
    for _ in range(months):
        names.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    stored = dict(session.execute(select(FinancialPeriod.period, FinancialPeriod.status).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period.in_(names))).all())
    return [(name, stored.get(name, "open")) for name in names]


# --- the administration's unit list -------------------------------------------------------

UNIT_PAGE_SIZE = 50
UNIT_METER_FILTERS = ("with", "without")
_SEARCH_MAX = 100


@dataclass(frozen=True)
class UnitFilters:
    """What the units list is narrowed to; unknown values are dropped by `read`."""

    q: str = ""
    status: str = ""
    meters: str = ""  # "with" | "without" | ""
    utility: str = ""

    @classmethod
    def read(cls, args: Mapping[str, str]) -> "UnitFilters":
        """The filters from a query string; anything unknown or unreadable means 'all'."""
        from app.models.estate import OCCUPANCY_STATUSES
        from app.models.meter import UTILITIES

        q = " ".join((args.get("q") or "").replace("\x00", "").split())[:_SEARCH_MAX]
        status = args.get("status") or ""
        meters = args.get("meters") or ""
        utility = args.get("utility") or ""
        return cls(q=q, status=status if status in OCCUPANCY_STATUSES else "",
                   meters=meters if meters in UNIT_METER_FILTERS else "",
                   utility=utility if utility in UTILITIES else "")

    def params(self) -> dict[str, str]:
        """The non-empty filters, to carry along in links (pages, exports)."""
        return {k: v for k, v in (("q", self.q), ("status", self.status), ("meters", self.meters),
                                  ("utility", self.utility)) if v}


@dataclass(frozen=True)
class UnitRow:
    unit: Unit
    tenants: tuple[str, ...]
    utilities: tuple[str, ...]  # of the unit's meters, one entry per meter

    @property
    def tenant_names(self) -> str:
        return ", ".join(self.tenants)


@dataclass(frozen=True)
class UnitPage:
    rows: list[UnitRow]
    total: int
    page: int
    pages: int
    without_account_number: int  # units of the estate (all, not just these) with none yet


def unit_list(session: Session, estate: Estate, filters: UnitFilters, *, page: int | None = 1,
              page_size: int | None = UNIT_PAGE_SIZE) -> UnitPage:
    """The estate's units matching the filters, by number; one page of them, or all when page is None."""
    from datetime import datetime

    from sqlalchemy import exists, func, or_

    from app.models import Meter, Person, Tenancy

    today = datetime.now(estate.tz).date()
    current = ((Tenancy.move_in <= today) & (Tenancy.move_out.is_(None) | (Tenancy.move_out > today)))
    query = select(Unit).where(Unit.estate_id == estate.id)
    if filters.q:
        like = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        compact = filters.q.replace(" ", "").upper()
        tenant_named = exists(select(Tenancy.id).join(Person, Person.id == Tenancy.person_id).where(
            Tenancy.unit_id == Unit.id, current, Person.full_name.ilike(like, escape="\\")))
        query = query.where(or_(Unit.number.ilike(like, escape="\\"), Unit.address.ilike(like, escape="\\"),
                                Unit.account_number.contains(compact, autoescape=True), tenant_named))
    if filters.status:
        query = query.where(Unit.occupancy_status == filters.status)
    has_meter = exists(select(Meter.id).where(Meter.unit_id == Unit.id))
    if filters.meters == "with":
        query = query.where(has_meter)
    elif filters.meters == "without":
        query = query.where(~has_meter)
    if filters.utility:
        query = query.where(exists(select(Meter.id).where(Meter.unit_id == Unit.id,
                                                          Meter.utility == filters.utility)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(func.length(Unit.number), Unit.number, Unit.id)
    pages = max(1, -(-total // page_size)) if page_size else 1
    if page is not None and page_size:
        page = min(max(1, page), pages)
        query = query.limit(page_size).offset((page - 1) * page_size)
    units = list(session.scalars(query))
    ids = [unit.id for unit in units]
    tenants: dict[int, list[str]] = {}
    utilities: dict[int, list[str]] = {}
    if ids:
        for unit_id, name in session.execute(select(Tenancy.unit_id, Person.full_name).join(
                Person, Person.id == Tenancy.person_id).where(Tenancy.unit_id.in_(ids), current)
                .order_by(Tenancy.move_in, Person.full_name)):
            tenants.setdefault(unit_id, []).append(name)
        for unit_id, utility in session.execute(select(Meter.unit_id, Meter.utility).where(
                Meter.unit_id.in_(ids)).order_by(Meter.utility, Meter.id)):
            utilities.setdefault(unit_id, []).append(utility)
    missing = session.scalar(select(func.count(Unit.id)).where(
        Unit.estate_id == estate.id, Unit.account_number.is_(None))) or 0
    rows = [UnitRow(unit, tuple(tenants.get(unit.id, ())), tuple(utilities.get(unit.id, ()))) for unit in units]
    return UnitPage(rows, total, page or 1, pages, missing)


def units_without_account_number(session: Session, estate: Estate) -> list[Unit]:
    """The estate's units that have no account number yet, in the order numbers are given."""
    from sqlalchemy import func

    return list(session.scalars(select(Unit).where(Unit.estate_id == estate.id, Unit.account_number.is_(None))
                                .order_by(Unit.created_at, func.length(Unit.number), Unit.number, Unit.id)))
