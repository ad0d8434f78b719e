"""Spend controls (F3): daily and monthly spend limits per pocket, per-person top-up caps.

Spend is what the ledger charged a pocket (use and standing charges) since the start of the
local day or month, so a limit is measured on the same postings a statement shows. Top-up
caps count a person's credited payments into the wallet and, until they complete or expire,
the checkouts they started: a started checkout reserves its amount, so eight checkouts
started at once can never together pass a cap (the grant row is locked while one is checked).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.families import FamilyError
from app.ledger.accounts import metered_utilities
from app.models import Account, Estate, LedgerTransaction, Posting, Unit, User, Wallet, utcnow
from app.models.families import SpendLimit, WalletGrant
from app.models.payments import Payment
from app.money import MoneyError, format_amount, parse_amount, quantize
from app.i18n.formatting import money_text
from app.reports.usage import local_midnight

SPEND_KINDS = ("consumption", "standing_charge")
WARNING_SHARE = Decimal("0.8")
MAX_LIMIT = Decimal("10000000")


@dataclass
class PeriodBounds:
    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime
    day_key: str
    month_key: str


def period_bounds(estate: Estate, now: datetime | None = None) -> PeriodBounds:
    """The estate's local day and month around `now`, as UTC instants and keys."""
    now = now or utcnow()
    today = now.astimezone(estate.tz).date()
    month_first = today.replace(day=1)
    next_month = (month_first + timedelta(days=32)).replace(day=1)
    return PeriodBounds(local_midnight(today, estate.tz), local_midnight(today + timedelta(days=1), estate.tz),
                        local_midnight(month_first, estate.tz), local_midnight(next_month, estate.tz),
                        today.isoformat(), f"{today:%Y-%m}")


# --- spend limits -------------------------------------------------------------------------

def spend_limits(session: Session, unit_id: int) -> dict[str, SpendLimit]:
    return {row.utility: row for row in session.scalars(select(SpendLimit).where(SpendLimit.unit_id == unit_id))}


def pocket_of(session: Session, unit_id: int, utility: str) -> Account | None:
    return session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == unit_id, Account.utility == utility))


def spent_since(session: Session, account_id: int, start: datetime, end: datetime | None = None) -> Decimal:
    """What the ledger charged the pocket (use and standing charges, net of corrections) since `start`."""
    query = (select(func.coalesce(func.sum(Posting.amount), 0))
             .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
             .where(Posting.account_id == account_id, LedgerTransaction.kind.in_(SPEND_KINDS),
                    LedgerTransaction.occurred_at >= start))
    if end is not None:
        query = query.where(LedgerTransaction.occurred_at < end)
    return max(-Decimal(session.scalar(query)), Decimal(0))


def _limit_value(text: str, commodity: str, field: str, errors: dict[str, str]) -> Decimal | None:
    if not (text or "").strip():
        return None
    try:
        value = quantize(parse_amount(text, commodity), commodity)
    except MoneyError:
        errors[field] = "Enter an amount like 250.00, or leave it empty for no limit."
        return None
    if value <= 0 or value > MAX_LIMIT:
        errors[field] = "A limit is a positive amount (leave it empty for no limit)."
        return None
    return value


def save_spend_limits(session: Session, unit: Unit, values: Mapping[str, str], *, acting_user: User) -> None:
    """Set each metered pocket's daily and monthly limit from `daily_<utility>`/`monthly_<utility>`; commits once."""
    errors: dict[str, str] = {}
    existing = spend_limits(session, unit.id)
    wanted: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for utility in metered_utilities(session, unit.id):
        pocket = pocket_of(session, unit.id, utility)
        commodity = pocket.commodity if pocket is not None else unit.estate.currency
        daily = _limit_value(values.get(f"daily_{utility}", ""), commodity, f"daily_{utility}", errors)
        monthly = _limit_value(values.get(f"monthly_{utility}", ""), commodity, f"monthly_{utility}", errors)
        if daily is not None and monthly is not None and daily > monthly:
            errors[f"daily_{utility}"] = "The daily limit cannot be more than the monthly one."
        wanted[utility] = (daily, monthly)
    if errors:
        raise FamilyError(errors)
    for utility, (daily, monthly) in wanted.items():
        row = existing.get(utility)
        old = {"daily": row.daily, "monthly": row.monthly} if row else {"daily": None, "monthly": None}
        if row is None:
            if daily is None and monthly is None:
                continue
            row = SpendLimit(unit_id=unit.id, utility=utility)
            session.add(row)
        if (row.daily, row.monthly) == (daily, monthly):
            continue
        row.daily, row.monthly = daily, monthly
        row.updated_by_user_id, row.updated_at = acting_user.id, utcnow()
        session.flush()
        audit.record(session, "spend_limit.saved", row, estate_id=unit.estate_id, old=old,
                     new={"unit": unit.number, "utility": utility, "daily": daily, "monthly": monthly})
    session.commit()


# --- per-person top-up caps ---------------------------------------------------------------

def save_topup_caps(session: Session, unit: Unit, grant_id: int, daily: str, monthly: str, *,
                    acting_user: User) -> WalletGrant:
    """Set one grant holder's top-up caps on this wallet (empty: no cap); commits once."""
    grant = session.scalar(select(WalletGrant).where(
        WalletGrant.id == grant_id, WalletGrant.unit_id == unit.id, WalletGrant.revoked_at.is_(None)))
    if grant is None:
        raise FamilyError({"grant": "That access was removed."})
    errors: dict[str, str] = {}
    currency = unit.estate.currency
    day = _limit_value(daily, currency, f"cap_daily_{grant_id}", errors)
    month = _limit_value(monthly, currency, f"cap_monthly_{grant_id}", errors)
    if day is not None and month is not None and day > month:
        errors[f"cap_daily_{grant_id}"] = "The daily cap cannot be more than the monthly one."
    if errors:
        raise FamilyError(errors)
    old = {"daily": grant.topup_daily_cap, "monthly": grant.topup_monthly_cap}
    grant.topup_daily_cap, grant.topup_monthly_cap = day, month
    audit.record(session, "wallet_grant.caps", grant, estate_id=unit.estate_id, old=old,
                 new={"unit": unit.number, "user": grant.user.email, "daily": day, "monthly": month})
    session.commit()
    return grant


@dataclass
class CapRoom:
    """How much more a person may top up into a wallet today and this month (None: no cap)."""

    daily: Decimal | None
    monthly: Decimal | None
    currency: str

    @property
    def left(self) -> Decimal | None:
        values = [v for v in (self.daily, self.monthly) if v is not None]
        return min(values) if values else None

    def words(self, *, left: bool = False) -> str:
        """'M 20.00 more today and M 100.00 more this month' (with `left`: '… left today …')."""
        parts = []
        if self.daily is not None:
            amount = money_text(self.daily, self.currency)
            parts.append(gettext("%(amount)s left today", amount=amount) if left
                         else gettext("%(amount)s more today", amount=amount))
        if self.monthly is not None:
            amount = money_text(self.monthly, self.currency)
            parts.append(gettext("%(amount)s left this month", amount=amount) if left
                         else gettext("%(amount)s more this month", amount=amount))
        if len(parts) == 2:
            return gettext("%(first)s and %(second)s", first=parts[0], second=parts[1])
        return "".join(parts)


def topped_up(session: Session, user_id: int, unit_id: int, since: datetime, expired_before: datetime) -> Decimal:
    """The person's credited top-ups and live checkouts into the wallet since `since`, their
    legs of group distributions (app.families.distribution) included."""
    from app.models.families import WalletDistribution, WalletDistributionLeg

    counts = (Payment.created_by_user_id == user_id, Payment.created_at >= since,
              or_(Payment.status == "credited",
                  (Payment.status == "pending") & (Payment.created_at >= expired_before)))
    total = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.unit_id == unit_id, *counts))
    legs = session.scalar(select(func.coalesce(func.sum(WalletDistributionLeg.amount), 0))
                          .join(WalletDistribution, WalletDistribution.id == WalletDistributionLeg.distribution_id)
                          .join(Payment, Payment.id == WalletDistribution.payment_id)
                          .where(WalletDistributionLeg.unit_id == unit_id, *counts))
    return Decimal(total) + Decimal(legs)


def cap_room(session: Session, grant: WalletGrant | None, estate: Estate, *, expired_before: datetime,
             now: datetime | None = None) -> CapRoom:
    """What the grant's caps leave today and this month."""
    room = CapRoom(None, None, estate.currency)
    if grant is None or (grant.topup_daily_cap is None and grant.topup_monthly_cap is None):
        return room
    bounds = period_bounds(estate, now)
    if grant.topup_daily_cap is not None:
        used = topped_up(session, grant.user_id, grant.unit_id, bounds.day_start, expired_before)
        room.daily = max(Decimal(grant.topup_daily_cap) - used, Decimal(0))
    if grant.topup_monthly_cap is not None:
        used = topped_up(session, grant.user_id, grant.unit_id, bounds.month_start, expired_before)
        room.monthly = max(Decimal(grant.topup_monthly_cap) - used, Decimal(0))
    return room


class CapReached(FamilyError):
    """The top-up would pass the person's cap on this wallet."""


def check_topup_cap(session: Session, user: User, unit: Unit, amount: Decimal, *,
                    expired_before: datetime, now: datetime | None = None) -> CapRoom:
    """Lock the person's grant and refuse an amount above what their caps leave; the caller commits.

    Every top-up path a grant holder uses calls this before it records the checkout, in the
    same transaction, so the lock serialises concurrent checkouts of one person and wallet.
    """
    from app.families.access import grant_of

    grant = grant_of(session, user, unit.id, lock=True)
    room = cap_room(session, grant, unit.estate, expired_before=expired_before, now=now)
    if room.left is not None and amount > room.left:
        if room.left <= 0:
            message = gettext("You have reached your top-up limit for this wallet: %(room)s.",
                              room=room.words(left=True))
        else:
            message = gettext("That is above your top-up limit: you can add %(room)s.", room=room.words())
        raise CapReached({"amount": message})
    return room


def start_family_checkout(session: Session, settings, *, unit: Unit, utility: str, amount: str, user: User,
                          return_url: str, cancel_url: str, notify_url: str, now: datetime | None = None):
    """Check the person's cap, then start the PayFast checkout (P4); commits once (or not at all)."""
    from app.payments import payfast
    from app.payments import PaymentError

    try:
        value = quantize(parse_amount(amount, unit.estate.currency), unit.estate.currency)
    except MoneyError as error:
        raise PaymentError(str(error)) from None
    check_topup_cap(session, user, unit, value, expired_before=payfast.checkout_expiry_cutoff(now), now=now)
    return payfast.start_checkout(session, settings, unit=unit, utility=utility, amount=amount, user=user,
                                  return_url=return_url, cancel_url=cancel_url, notify_url=notify_url)


def limit_rows(session: Session, unit: Unit, now: datetime | None = None) -> list[dict]:
    """Each metered pocket with its limits and what was spent today and this month."""
    bounds = period_bounds(unit.estate, now)
    limits = spend_limits(session, unit.id)
    rows = []
    for utility in metered_utilities(session, unit.id):
        pocket = pocket_of(session, unit.id, utility)
        if pocket is None:
            continue
        row = limits.get(utility)
        rows.append({"utility": utility, "commodity": pocket.commodity,
                     "daily": row.daily if row else None, "monthly": row.monthly if row else None,
                     "spent_today": spent_since(session, pocket.id, bounds.day_start),
                     "spent_month": spent_since(session, pocket.id, bounds.month_start)})
    return rows


def today_in(estate: Estate) -> date:
    return utcnow().astimezone(estate.tz).date()


def plain_amount(value: Decimal | None, commodity: str) -> str:
    """An amount as a form field shows it: quantised, no symbol or grouping ("" for none)."""
    return "" if value is None else str(quantize(Decimal(value), commodity))
