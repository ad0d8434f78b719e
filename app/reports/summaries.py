"""Read models for the layer landing pages: unit cards, estate figures, bulk vs units."""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from app.estates.settings_catalog import setting_default
from app.ledger.accounts import idle_pocket_ids
from app.metering.queries import feed_status, imported_meter_count, last_imports, online_meter_count
from app.models import Account, ConsumptionRollup, Estate, LedgerTransaction, Meter, Posting, Tenancy, Unit, Wallet, utcnow
from app.settings import get_setting


@dataclass
class PocketView:
    account_id: int
    utility: str
    balance: Decimal
    commodity: str


@dataclass
class MeterView:
    id: int
    serial: str
    utility: str
    role: str
    relay_state: str
    last_reading_at: object
    last_register: Decimal | None
    protocol: str | None = None
    interval_minutes: int | None = None
    last_import_at: object = None  # vendor-fed meters: when their readings last arrived

    @property
    def status(self) -> str:
        """online / offline, or imported / import_overdue for vendor-fed meters (feed_status)."""
        return feed_status(self.last_reading_at, self.protocol, self.interval_minutes, utcnow())

    @property
    def online(self) -> bool:
        return self.status == "online"


@dataclass
class UnitCard:
    unit: Unit
    estate: Estate
    tenant_name: str | None
    pockets: list[PocketView] = field(default_factory=list)
    meters: list[MeterView] = field(default_factory=list)

    @property
    def supply_on(self) -> bool:
        return all(m.relay_state != "off" for m in self.meters if m.utility == "electricity")

    @property
    def last_reading_at(self):
        times = [m.last_reading_at for m in self.meters if m.last_reading_at]
        return max(times) if times else None


def unit_cards(session: Session, units: list[Unit]) -> list[UnitCard]:
    """Return a card per unit with pocket balances, meters and the current tenant, in 3 queries."""
    if not units:
        return []
    ids = [u.id for u in units]
    cards = {u.id: UnitCard(unit=u, estate=u.estate, tenant_name=None) for u in units}
    pockets = session.execute(
        select(Wallet.unit_id, Account.id, Account.utility, Account.balance, Account.commodity)
        .join(Account, Account.wallet_id == Wallet.id)
        .where(Wallet.unit_id.in_(ids))
        .order_by(Account.utility)
    )
    for unit_id, account_id, utility, balance, commodity in pockets:
        cards[unit_id].pockets.append(PocketView(account_id, utility, Decimal(balance), commodity))
    # Columns, not Meter objects: the owner portfolio shows 25 cards of 4 meters a page.
    for unit_id, *view in session.execute(
            select(Meter.unit_id, Meter.id, Meter.serial, Meter.utility, Meter.role, Meter.relay_state,
                   Meter.last_reading_at, Meter.last_register, Meter.protocol, Meter.interval_minutes)
            .where(Meter.unit_id.in_(ids), Meter.detached_at.is_(None)).order_by(Meter.utility)):
        cards[unit_id].meters.append(MeterView(*view))
    imported = [m for card in cards.values() for m in card.meters if m.status in ("imported", "import_overdue")]
    if imported:  # one query, only where a vendor import feeds a meter
        imports = last_imports(session, [m.id for m in imported])
        for meter in imported:
            meter.last_import_at = imports.get(meter.id)
    _hide_unused_pockets(session, cards.values())
    today = date.today()
    tenancies = session.execute(
        select(Tenancy.unit_id, Tenancy.person_id, Tenancy.move_in)
        .where(Tenancy.unit_id.in_(ids), Tenancy.move_in <= today,
               or_(Tenancy.move_out.is_(None), Tenancy.move_out > today))
    ).all()
    if tenancies:
        from app.models import Person

        names = dict(session.execute(select(Person.id, Person.full_name).where(
            Person.id.in_({t.person_id for t in tenancies}))).all())
        for tenancy in tenancies:
            cards[tenancy.unit_id].tenant_name = names.get(tenancy.person_id)
    return [cards[u.id] for u in units]


def _hide_unused_pockets(session: Session, cards) -> None:
    """Leave out empty pockets no meter draws on and nothing ever posted to (opened in the past
    for every utility); a pocket with money or history stays, metered or not."""
    candidates = {p.account_id for card in cards for p in card.pockets
                  if p.balance == 0 and p.utility not in {m.utility for m in card.meters}}
    idle = idle_pocket_ids(session, candidates)
    if idle:
        for card in cards:
            card.pockets = [p for p in card.pockets if p.account_id not in idle]


def pocket_choices(session: Session, unit: Unit) -> list[str]:
    """The utilities of the unit's pockets worth offering in a filter, in pocket order."""
    from app.models.meter import UTILITIES
    (card,) = unit_cards(session, [unit])
    shown = {p.utility for p in card.pockets}
    return [utility for utility in UTILITIES if utility in shown]


@dataclass
class EstateFigures:
    estate: Estate
    units: int
    occupied: int
    meters: int
    meters_online: int  # live meters only
    wallets_in_credit: int
    wallets: int
    pocket_totals: dict[str, tuple[Decimal, str]]  # utility -> (sum, commodity)
    revenue: dict[str, Decimal]  # account name -> balance (billed consumption, levies)
    meters_imported: int = 0  # fed by a vendor's daily import: neither online nor offline

    @property
    def meters_live(self) -> int:
        return self.meters - self.meters_imported

    @property
    def occupancy_percent(self) -> int:
        return round(100 * self.occupied / self.units) if self.units else 0

    @property
    def online_percent(self) -> int:
        return round(100 * self.meters_online / self.meters_live) if self.meters_live else 0

    @property
    def good_standing_percent(self) -> int:
        return round(100 * self.wallets_in_credit / self.wallets) if self.wallets else 0


def estate_figures(session: Session, estate: Estate) -> EstateFigures:
    """Return an estate's headline figures from cached balances and meter state."""
    units = session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == estate.id))
    occupied = session.scalar(select(func.count(Unit.id)).where(
        Unit.estate_id == estate.id, Unit.occupancy_status == "occupied"))
    meters = session.scalar(select(func.count(Meter.id)).where(Meter.estate_id == estate.id))
    online = online_meter_count(session, estate.id)
    per_wallet = (
        select(Account.wallet_id, func.min(Account.balance).label("lowest"))
        .where(Account.estate_id == estate.id, Account.kind == "pocket")
        .group_by(Account.wallet_id).subquery()
    )
    wallets = session.scalar(select(func.count()).select_from(per_wallet))
    in_credit = session.scalar(select(func.count()).select_from(per_wallet).where(per_wallet.c.lowest >= 0))
    totals = {
        utility: (Decimal(total), commodity)
        for utility, commodity, total in session.execute(
            select(Account.utility, Account.commodity, func.sum(Account.balance))
            .where(Account.estate_id == estate.id, Account.kind == "pocket")
            .group_by(Account.utility, Account.commodity).order_by(Account.utility))
    }
    revenue = {
        name: Decimal(balance)
        for name, balance in session.execute(
            select(Account.name, Account.balance)
            .where(Account.estate_id == estate.id, Account.kind.in_(("revenue", "levy")))
            .order_by(Account.name))
    }
    return EstateFigures(estate, units or 0, occupied or 0, meters or 0, online or 0,
                         in_credit or 0, wallets or 0, totals, revenue,
                         meters_imported=imported_meter_count(session, estate.id))


@dataclass
class BulkComparison:
    utility: str
    bulk: Decimal
    units: Decimal

    @property
    def loss(self) -> Decimal:
        return self.bulk - self.units

    @property
    def loss_percent(self) -> Decimal | None:
        if not self.bulk:
            return None
        return (100 * self.loss / self.bulk).quantize(Decimal("0.1"))


LOSS_THRESHOLD_SETTING = "loss_threshold_percent"


def loss_threshold(session: Session, estate_id: int) -> Decimal:
    """The loss % above which a bulk comparison is marked (estate setting, else the catalogue's 15)."""
    value = get_setting(session, LOSS_THRESHOLD_SETTING, estate_id, default=setting_default(LOSS_THRESHOLD_SETTING))
    try:
        return Decimal(str(value))
    except ArithmeticError:  # a stored value nobody can read marks as the default does
        return Decimal(setting_default(LOSS_THRESHOLD_SETTING))


def bulk_vs_units(session: Session, estate: Estate, days: int = 30) -> list[BulkComparison]:
    """Consumption over the last `days` local days (today so far included) on bulk meters vs unit
    meters, per utility, from the day roll-ups (M5): about days x meters rows, never the raw readings."""
    tz = estate.tz
    first = utcnow().astimezone(tz).date() - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC)
    rows = session.execute(
        select(Meter.utility, Meter.role, func.coalesce(func.sum(ConsumptionRollup.consumption), 0))
        .join(ConsumptionRollup, and_(ConsumptionRollup.meter_id == Meter.id, ConsumptionRollup.grain == "day",
                                      ConsumptionRollup.period_start >= since))
        .where(Meter.estate_id == estate.id, Meter.role.in_(("unit", "bulk")))
        .group_by(Meter.utility, Meter.role)
    )
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for utility, role, total in rows:
        totals[utility][role] += Decimal(total)
    # Only utilities with a bulk supply meter can be compared (solar is generated on site).
    return [BulkComparison(u, totals[u]["bulk"], totals[u]["unit"])
            for u in sorted(totals) if "bulk" in totals[u]]


@dataclass
class StatementLine:
    transaction_id: int
    occurred_at: object
    kind: str
    memo: str
    utility: str | None
    amount: Decimal
    commodity: str


def recent_pocket_activity(session: Session, account_ids: list[int], limit: int = 10, *,
                           windows=None) -> list[StatementLine]:
    """The latest postings on these pockets (in the viewer's windows), newest first."""
    from app.reports.history import within

    if not account_ids or limit <= 0 or windows == []:
        return []
    inside = within(LedgerTransaction.occurred_at, windows)
    # Sorting all of a pocket's postings by occurred_at reads its whole history (one posting per
    # reading). Instead: the last `limit` postings of each pocket by transaction id (an index walk)
    # are candidates; the `limit` newest postings overall occurred no earlier than the `limit`-th
    # newest candidate, so only transactions since that bound are read (occurred_at index).
    # Back-dated or out-of-order transactions therefore keep their place.
    # A tenant's windows filter the candidates too, so the bound holds for what they may see.
    candidate = select(Posting.transaction_id)
    if inside is not None:
        candidate = candidate.join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id).where(inside)
    latest = [candidate.where(Posting.account_id == account_id)
              .order_by(Posting.transaction_id.desc()).limit(limit).subquery()
              for account_id in dict.fromkeys(account_ids)]
    candidates = union_all(*[select(sub.c.transaction_id) for sub in latest]).subquery()
    bound = session.scalar(
        select(LedgerTransaction.occurred_at)
        .where(LedgerTransaction.id.in_(select(candidates.c.transaction_id)))
        .order_by(LedgerTransaction.occurred_at.desc()).offset(limit - 1).limit(1))
    query = (
        select(LedgerTransaction.id, LedgerTransaction.occurred_at, LedgerTransaction.kind,
               LedgerTransaction.memo, Account.utility, Posting.amount, Posting.commodity)
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.account_id.in_(account_ids))
        .order_by(LedgerTransaction.occurred_at.desc(), LedgerTransaction.id.desc(), Posting.id.desc())
        .limit(limit)
    )
    if bound is not None:  # None: fewer than `limit` postings in all, so no bound is needed
        query = query.where(LedgerTransaction.occurred_at >= bound)
    if inside is not None:
        query = query.where(inside)
    return [StatementLine(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]), r[6]) for r in session.execute(query)]
