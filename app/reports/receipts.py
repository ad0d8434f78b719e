"""A person's payments ("My payments") and the receipt of each (T3, P6).

Every payment that reached a wallet is a `topup` ledger transaction on the unit's pockets,
whatever brought it (PayFast, M-PESA by SMS, EFT, staff-entered, the demo's history), so the
list reads the ledger and adds the Payment row that caused an entry when there is one.
Payments made at SparkMeter (Koios and ThunderCloud imports) are recorded, never credited to
our wallet (app/sources/koios_payments.py explains why): they are listed from their own tables,
with the credit held on the SparkMeter meter. Checkouts still waiting, failed or cancelled are
listed for the person who started them. A tenant sees only what happened during their own
tenancies (app/reports/history.viewer_windows); staff and owners see everything.

Receipt numbers name their source and stay stable: T<ledger transaction>, K<Koios row>,
C<ThunderCloud row>.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session

from app.auth.scope import unit_ids_query
from app.models import (
    Account, Estate, KoiosPayment, LedgerTransaction, Posting, ThunderCloudHeartbeat, ThunderCloudPayment, Unit,
    User, Wallet,
)
from app.models.payments import Payment
from app.i18n.formatting import money_text
from app.i18n.label_texts import N_
from app.reports.history import Window, viewer_windows, within

ROLES = ("tenant",)
LIMIT = 100
# English msgids (shown through the `translate` filter and the receipt PDF); brand names stay as they are.
METHOD_LABELS = {"payfast": "PayFast", "mpesa": "M-PESA", "eft": N_("Bank transfer (EFT)"),
                 "koios": "SparkMeter (Koios)", "thundercloud": "SparkMeter (ThunderCloud)",
                 "manual": N_("Recorded by staff"), "staff": N_("Recorded by staff"), "payments": N_("Payment")}
WAITING = ("pending", "failed", "cancelled")  # checkouts that never reached a wallet
_RECEIPT = re.compile(r"^([TKC])(\d{1,12})$")


def method_label(key: str | None) -> str:
    """'PayFast', 'M-PESA', 'Bank transfer (EFT)' for a provider or clearing-account key."""
    if not key:
        return "Payment"
    return METHOD_LABELS.get(key, key.replace("_", " ").capitalize())


@dataclass(frozen=True)
class PaymentLine:
    """One row of My payments."""

    receipt: str | None  # receipt number ("T123"), None for a checkout that never paid
    unit: Unit
    at: datetime
    method: str
    reference: str | None  # what the payer typed, else the provider's id for the money
    amount: Decimal
    currency: str
    status: str  # a code labelled by app.labels ("payment_line"): received, recorded, reversed, pending, expired, ...
    pockets: list[str] = field(default_factory=list)  # utilities credited

    @property
    def received(self) -> bool:
        return self.receipt is not None


@dataclass
class ReceiptPart:
    utility: str | None
    amount: Decimal
    commodity: str
    balance_after: Decimal | None  # the pocket's (or vendor meter's) balance right after it


@dataclass
class Receipt:
    line: PaymentLine
    estate: Estate
    parts: list[ReceiptPart]
    payer: str | None = None
    memo: str = ""
    note: str = ""


# --- the list ------------------------------------------------------------------------------


def _reach(session: Session, user: User) -> tuple[list[Unit] | None, dict[int, list[Window] | None]]:
    """The units whose payments the user sees (None: all, for staff) and each one's windows."""
    if user.is_staff:
        return None, {}
    units = list(session.scalars(select(Unit).where(Unit.id.in_(unit_ids_query(user, ROLES)))))
    return units, {unit.id: viewer_windows(session, user, unit) for unit in units}


def _scoped(unit_column, moment_column, units: list[Unit] | None, windows: dict[int, list[Window] | None]):
    """A condition: the row's unit is one of the units and its moment inside that unit's windows."""
    if units is None:
        return None
    parts = []
    for unit in units:
        inside = within(moment_column, windows.get(unit.id))
        parts.append(unit_column == unit.id if inside is None else and_(unit_column == unit.id, inside))
    return or_(*parts) if parts else false()


def my_payments(session: Session, user: User, limit: int = LIMIT, *, expired_before: datetime | None = None,
                show_expired: bool = False) -> list[PaymentLine]:
    """The user's payments, newest first: every top-up into their units' wallets in their tenancies,
    SparkMeter payments recorded for those units, and their own unfinished checkouts (those left
    unpaid since before `expired_before` only with `show_expired`)."""
    units, windows = _reach(session, user)
    lines = _ledger_lines(session, units, windows, limit)
    lines += _koios_lines(session, units, windows, limit)
    lines += _thundercloud_lines(session, units, windows, limit)
    lines += _waiting_lines(session, user, units, windows, limit, expired_before, show_expired)
    lines.sort(key=lambda line: line.at, reverse=True)
    return lines[:limit]


def _ledger_lines(session, units, windows, limit, transaction_ids: list[int] | None = None) -> list[PaymentLine]:
    condition = _scoped(Wallet.unit_id, LedgerTransaction.occurred_at, units, windows)
    query = (select(LedgerTransaction.id, LedgerTransaction.occurred_at)
             .join(Posting, Posting.transaction_id == LedgerTransaction.id)
             .join(Account, Account.id == Posting.account_id)
             .join(Wallet, Wallet.id == Account.wallet_id)
             .where(LedgerTransaction.kind == "topup")
             .group_by(LedgerTransaction.id, LedgerTransaction.occurred_at)
             .order_by(LedgerTransaction.occurred_at.desc(), LedgerTransaction.id.desc()).limit(limit))
    if condition is not None:
        query = query.where(condition)
    if transaction_ids is not None:
        query = query.where(LedgerTransaction.id.in_(transaction_ids))
    ids = [row.id for row in session.execute(query)]
    if not ids:
        return []
    legs = session.execute(
        select(Posting.transaction_id, Posting.amount, Posting.commodity, Account.kind, Account.code,
               Account.utility, Wallet.unit_id, LedgerTransaction.occurred_at)
        .join(Account, Account.id == Posting.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .outerjoin(Wallet, Wallet.id == Account.wallet_id)
        .where(Posting.transaction_id.in_(ids)).order_by(Posting.id)).all()
    payments = {p.transaction_id: p for p in session.scalars(select(Payment).where(Payment.transaction_id.in_(ids)))}
    reversed_ids = set(session.scalars(select(LedgerTransaction.reverses_id).where(
        LedgerTransaction.reverses_id.in_(ids))))
    found: dict[int, dict] = {}
    for leg in legs:
        entry = found.setdefault(leg.transaction_id, {"at": leg.occurred_at, "paid": Decimal(0), "currency": None,
                                                      "key": None, "units": {}})
        if leg.kind == "clearing":
            entry["paid"] -= Decimal(leg.amount)
            entry["currency"] = leg.commodity
            entry["key"] = leg.code.split(":", 1)[-1]
        elif leg.kind == "pocket" and leg.unit_id is not None:
            share = entry["units"].setdefault(leg.unit_id, {"pockets": [], "sum": Decimal(0), "commodity": leg.commodity})
            share["pockets"].append(leg.utility)
            share["sum"] += Decimal(leg.amount)
    unit_of = {u.id: u for u in session.scalars(select(Unit).where(
        Unit.id.in_({uid for e in found.values() for uid in e["units"]})))}
    lines = []
    for transaction_id in ids:
        entry = found[transaction_id]
        # One top-up may feed several units' wallets (a family's): show the viewer's unit and its share.
        unit_id = next((uid for uid in entry["units"] if units is None or (
            uid in windows and _inside(entry["at"], windows[uid]))), None)
        if unit_id is None:
            continue
        unit, share = unit_of[unit_id], entry["units"][unit_id]
        payment = payments.get(transaction_id)
        amount, currency = entry["paid"], entry["currency"]
        if len(entry["units"]) > 1 and share["commodity"] == unit.estate.currency:
            amount, currency = share["sum"], share["commodity"]
        elif payment is not None:
            amount, currency = Decimal(payment.amount), payment.currency or unit.estate.currency
        elif currency is None:  # no clearing leg: the pockets' sum is what was paid
            amount, currency = share["sum"], unit.estate.currency
        lines.append(PaymentLine(
            receipt=f"T{transaction_id}", unit=unit, at=entry["at"],
            method=method_label(payment.provider if payment else entry["key"]),
            reference=(payment.reference or payment.provider_ref) if payment else None,
            amount=amount, currency=currency,
            status="reversed" if transaction_id in reversed_ids else "received",
            pockets=list(dict.fromkeys(share["pockets"]))))
    return lines


def _inside(moment: datetime, windows: list[Window] | None) -> bool:
    return windows is None or any(begin <= moment and (stop is None or moment < stop) for begin, stop in windows)


def _koios_lines(session, units, windows, limit, row_id: int | None = None) -> list[PaymentLine]:
    # Rows mirroring our own credit push are already in the ledger as their Payment's top-up.
    query = (select(KoiosPayment, Unit).join(Unit, Unit.id == KoiosPayment.unit_id)
             .where(KoiosPayment.payment_id.is_(None))
             .order_by(KoiosPayment.paid_at.desc(), KoiosPayment.id.desc()).limit(limit))
    condition = _scoped(KoiosPayment.unit_id, KoiosPayment.paid_at, units, windows)
    if condition is not None:
        query = query.where(condition)
    if row_id is not None:
        query = query.where(KoiosPayment.id == row_id)
    return [PaymentLine(f"K{row.id}", unit, row.paid_at, method_label("koios"), row.memo or row.koios_id,
                        Decimal(row.amount), row.currency or unit.estate.currency, "recorded",
                        ["electricity"])
            for row, unit in session.execute(query)]


def _thundercloud_lines(session, units, windows, limit, row_id: int | None = None) -> list[PaymentLine]:
    query = (select(ThunderCloudPayment, Unit).join(Unit, Unit.id == ThunderCloudPayment.unit_id)
             .order_by(ThunderCloudPayment.detected_at.desc(), ThunderCloudPayment.id.desc()).limit(limit))
    condition = _scoped(ThunderCloudPayment.unit_id, ThunderCloudPayment.detected_at, units, windows)
    if condition is not None:
        query = query.where(condition)
    if row_id is not None:
        query = query.where(ThunderCloudPayment.id == row_id)
    return [PaymentLine(f"C{row.id}", unit, row.detected_at, method_label("thundercloud"), row.heartbeat_id,
                        Decimal(row.amount), unit.estate.currency, "recorded", ["electricity"])
            for row, unit in session.execute(query)]


def _waiting_query(user, units, windows):
    query = select(Payment, Unit).join(Unit, Unit.id == Payment.unit_id).where(Payment.status.in_(WAITING))
    if not user.is_staff:
        query = query.where(Payment.created_by_user_id == user.id,
                            _scoped(Payment.unit_id, Payment.created_at, units, windows))
    return query


def _waiting_lines(session, user, units, windows, limit, expired_before=None, show_expired=False) -> list[PaymentLine]:
    """Checkouts that never reached a wallet: only the person who started them sees them."""
    query = _waiting_query(user, units, windows).order_by(Payment.created_at.desc()).limit(limit)
    if expired_before is not None and not show_expired:
        query = query.where(Payment.not_expired(expired_before))
    return [PaymentLine(None, unit, payment.created_at, method_label(payment.provider), payment.reference,
                        Decimal(payment.amount), payment.currency or unit.estate.currency,
                        payment.shown_status(expired_before) if expired_before else payment.status,
                        [payment.utility] if payment.utility else [])
            for payment, unit in session.execute(query)]


def expired_checkouts(session: Session, user: User, expired_before: datetime) -> int:
    """How many of the user's checkouts were left unpaid since before the cutoff (hidden by default)."""
    units, windows = _reach(session, user)
    query = _waiting_query(user, units, windows).where(Payment.expired(expired_before))
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


# --- one receipt ---------------------------------------------------------------------------


def find_receipt(session: Session, user: User, number: str) -> Receipt | None:
    """The receipt the user may see under this number, or None (unknown, not theirs, or outside their tenancy)."""
    match = _RECEIPT.match(number or "")
    if match is None:
        return None
    source, row_id = match.group(1), int(match.group(2))
    units, windows = _reach(session, user)
    if source == "T":
        lines = _ledger_lines(session, units, windows, 1, transaction_ids=[row_id])
    elif source == "K":
        lines = _koios_lines(session, units, windows, 1, row_id=row_id)
    else:
        lines = _thundercloud_lines(session, units, windows, 1, row_id=row_id)
    if not lines:
        return None
    line = lines[0]
    estate = line.unit.estate
    if source == "T":
        return _ledger_receipt(session, line, estate, row_id)
    if source == "K":
        row = session.get(KoiosPayment, row_id)
        return Receipt(line, estate, [ReceiptPart("electricity", line.amount, line.currency, None)],
                       memo=row.memo or "", note=gettext("Paid at SparkMeter: the credit is on your SparkMeter "
                                                         "meter account, not in this wallet, so no wallet balance "
                                                         "changed."))
    row = session.get(ThunderCloudPayment, row_id)
    after = session.scalar(select(ThunderCloudHeartbeat.credit_balance).where(
        ThunderCloudHeartbeat.heartbeat_id == row.heartbeat_id))
    return Receipt(line, estate, [ReceiptPart("electricity", line.amount, line.currency,
                                              Decimal(after) if after is not None else None)],
                   memo=gettext("%(quantity)s on meter %(serial)s", quantity=money_text(Decimal(row.kwh), "KWH"),
                                serial=row.meter_serial),
                   note=gettext("Seen by ThunderCloud as a rise in the SparkMeter meter's credit; the balance is the "
                                "meter account's credit right after it."))


def _ledger_receipt(session: Session, line: PaymentLine, estate: Estate, transaction_id: int) -> Receipt:
    transaction = session.get(LedgerTransaction, transaction_id)
    payment = session.scalar(select(Payment).where(Payment.transaction_id == transaction_id))
    postings = session.execute(
        select(Posting.id, Posting.account_id, Posting.amount, Posting.commodity, Account.utility)
        .join(Account, Account.id == Posting.account_id).join(Wallet, Wallet.id == Account.wallet_id)
        .where(Posting.transaction_id == transaction_id, Wallet.unit_id == line.unit.id)
        .order_by(Posting.id)).all()
    parts = []
    for posting in postings:
        # The pocket's balance after this posting, in the history's order (time, then ledger order).
        earlier = or_(LedgerTransaction.occurred_at < transaction.occurred_at,
                      and_(LedgerTransaction.occurred_at == transaction.occurred_at,
                           or_(LedgerTransaction.id < transaction.id,
                               and_(LedgerTransaction.id == transaction.id, Posting.id <= posting.id))))
        after = session.scalar(select(func.coalesce(func.sum(Posting.amount), 0))
                               .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                               .where(Posting.account_id == posting.account_id, earlier))
        parts.append(ReceiptPart(posting.utility, Decimal(posting.amount), posting.commodity, Decimal(after or 0)))
    payer = None
    if payment is not None:
        payer = payment.payer_name or payment.payer_phone or payment.payer_email
    return Receipt(line, estate, parts, payer=payer, memo=transaction.memo)

