"""Recovery of arrears on top-up (A4): a share of each payment pays the unit's arrears first.

The estate chooses the share (`arrears_recovery_mode`: nothing, a percentage or a fixed amount
of each top-up); once the escalation ladder restricts a debtor, the share rises to the
estate's restricted rate. The share pays the open arrears records of the unit and of its
tenants today, oldest first, whatever opened them (move-out, levy, migration, manual), each
up to what it still owes; the rest reaches the pocket. `credit_payment()` puts the shares in
the same ledger transaction as the top-up (one leg per record), so a payment is either
wholly credited with its recovery or not at all, and the legs sum exactly to the payment in
the currency's minor units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.estates.settings_catalog import setting_default
from app.models import Account, Estate, Unit, utcnow
from app.models.arrears import ArrearsRecord
from app.models.debt import ArrearsEpisode
from app.money import format_amount, quantize
from app.settings import get_setting


@dataclass
class Recovery:
    """What one top-up pays towards arrears: (record, amount) oldest first, and the total."""

    shares: list[tuple[ArrearsRecord, Decimal]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((amount for _, amount in self.shares), Decimal("0"))

    def legs(self) -> list[tuple[int, Decimal]]:
        return [(record.account_id, amount) for record, amount in self.shares]


def _setting(session: Session, estate: Estate, key: str):
    return get_setting(session, key, estate.id, default=setting_default(key))


def recovery_records(session: Session, unit: Unit) -> list[ArrearsRecord]:
    """The open records a top-up to this unit pays: the unit's, and its tenants' own, oldest first."""
    from datetime import date

    from app.models import Tenancy

    today = date.today()  # the tenants today, as `current_tenant_persons()`: one query with the records
    tenants = select(Tenancy.person_id).where(
        Tenancy.unit_id == unit.id, Tenancy.move_in <= today,
        (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today))
    query = select(ArrearsRecord).where(
        ArrearsRecord.estate_id == unit.estate_id, ArrearsRecord.status == "open",
        or_(ArrearsRecord.unit_id == unit.id,
            (ArrearsRecord.unit_id.is_(None)) & ArrearsRecord.person_id.in_(tenants)))
    return list(session.scalars(query.order_by(ArrearsRecord.opened_at, ArrearsRecord.id)))


def is_restricted(session: Session, unit_id: int) -> bool:
    """Whether the ladder has restricted the unit in its open arrears episode."""
    return bool(session.scalar(select(ArrearsEpisode.id).where(
        ArrearsEpisode.unit_id == unit_id, ArrearsEpisode.closed_at.is_(None), ArrearsEpisode.restricted.is_(True))))


def share_of(session: Session, estate: Estate, amount: Decimal, *, restricted: bool = False) -> Decimal:
    """The part of a top-up of `amount` that the estate's setting sends to arrears (before capping)."""
    mode = _setting(session, estate, "arrears_recovery_mode")
    share = Decimal("0")
    if mode == "percent":
        share = amount * Decimal(str(_setting(session, estate, "arrears_recovery_percent"))) / 100
    elif mode == "fixed":
        share = Decimal(str(_setting(session, estate, "arrears_recovery_fixed")))
    if restricted:
        share = max(share, amount * Decimal(str(_setting(session, estate, "arrears_restricted_percent"))) / 100)
    # Rounded down to minor units so the share never exceeds its rate; never more than paid.
    step = Decimal(1).scaleb(-estate.currency_minor_units) if estate.currency_minor_units else Decimal(1)
    share = (share / step).to_integral_value(rounding="ROUND_FLOOR") * step
    return min(quantize(share, estate.currency), amount)


def plan_recovery(session: Session, estate: Estate, unit: Unit, amount: Decimal) -> Recovery:
    """Split the recovery share of a top-up over the open records, oldest first (nothing posted)."""
    records = recovery_records(session, unit)
    if not records:
        return Recovery()
    remaining = share_of(session, estate, amount, restricted=is_restricted(session, unit.id))
    shares = []
    for record in records:
        if remaining <= 0:
            break
        session.refresh(record.account, ["balance"])
        paid = min(remaining, record.outstanding)
        if paid > 0:
            shares.append((record, paid))
            remaining -= paid
    return Recovery(shares)


def close_cleared(session: Session, recovery: Recovery, *, occurred_at=None) -> None:
    """After the top-up is posted: close each record it paid off; audited. The caller commits."""
    from app.audit import record as audit

    for record, _ in recovery.shares:
        session.refresh(record.account, ["balance"])
        if record.outstanding <= 0 and record.status == "open":
            record.status, record.closed_at = "paid", occurred_at or utcnow()
            audit(session, "arrears.paid", record, new={"status": "paid"}, estate_id=record.estate_id)


def describe(recovery: Recovery, currency: str) -> str:
    """The receipt's and memo's line, e.g. "R20.00 paid arrears"."""
    return f"{format_amount(recovery.total, currency)} paid arrears" if recovery.total else ""


def payment_recovery(session: Session, payment) -> Decimal:
    """What a credited payment paid towards arrears (its legs on arrears accounts)."""
    from app.models import Posting

    if payment.transaction_id is None:
        return Decimal("0")
    rows = session.execute(select(Posting.amount).join(Account, Account.id == Posting.account_id).where(
        Posting.transaction_id == payment.transaction_id, Account.kind == "arrears")).scalars().all()
    return sum((Decimal(value) for value in rows), Decimal("0"))


def posted_legs(session: Session, key: str) -> list[tuple[int, Decimal]] | None:
    """The legs a top-up posted under `key` (None when it was never posted): a replay must repeat
    them, since the recovery share depends on what was owed at the time."""
    from app.models import LedgerTransaction, Posting

    transaction_id = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key))
    if transaction_id is None:
        return None
    return [(account_id, Decimal(amount)) for account_id, amount in session.execute(
        select(Posting.account_id, Posting.amount).where(Posting.transaction_id == transaction_id))]
