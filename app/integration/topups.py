"""Top-ups through the API (POST /api/v1/topups): an external vendor's payment, credited once.

The payment is a `Payment` of provider "api" keyed by the API key and the request's
Idempotency-Key, credited through `credit_payment()` like every other provider, so even a
replay that outlives the stored response (24 h) never posts twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models import Account, Estate, Unit, Wallet, utcnow
from app.models.api import ApiKey
from app.models.payments import Payment
from app.money import minor_units
from app.payments import PaymentError
from app.payments.credit import check_amount, credit_payment_to_pocket, payment_ceiling

PROVIDER = "api"


@dataclass(frozen=True)
class TopupResult:
    payment: Payment
    balance: Decimal
    created: bool
    commodity: str | None = None  # the pocket's (currency or kWh/kL in units mode); None: no pocket


def provider_ref(key: ApiKey, idempotency_key: str) -> str:
    """The payment's provider reference: the key and a digest of its Idempotency-Key (fits 64)."""
    return f"k{key.id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"


def check_places(amount: Decimal, currency: str, field: str = "amount") -> None:
    """Refuse an amount with more decimals than the currency's minor units (XOF none, ZAR 2): money
    received is credited as sent, never rounded. Raises PaymentError naming `field` (a 422)."""
    places = minor_units(currency)
    if amount.as_tuple().exponent < -places:
        allowed = "no decimals" if places == 0 else f"at most {places} decimals"
        raise PaymentError(f"{currency} amounts have {allowed} ({amount} was sent)", field=field)


def topup(session: Session, key: ApiKey, unit: Unit, *, amount: Decimal, utility: str | None,
          idempotency_key: str, reference: str | None = None, payer_phone: str | None = None,
          commit: bool = True) -> TopupResult:
    """Record and credit one API top-up (or return the one already made under this key); commits
    unless `commit=False` (the API commits it with the stored response, in one transaction).

    The receipt is sent by the `payment_receipts` job once committed, not in the request.
    """
    estate = session.get(Estate, unit.estate_id)
    ref = provider_ref(key, idempotency_key)
    try:
        check_places(amount, estate.currency)
        ceiling = payment_ceiling(session, estate.id)
        check_amount(session, amount, estate, ceiling=ceiling)
    except PaymentError:
        existing = _existing(session, ref)  # made before under this key: answered whatever the rules say now
        if existing is None:
            raise
        balance, commodity = _balance(session, existing)
        return TopupResult(existing, balance, False, commodity)
    # The payment row is inserted unless one has this reference already (its unique index
    # decides, in the same statement): then that one is the answer and nothing is credited.
    payment = _insert_payment(session, {
        "provider": PROVIDER, "provider_ref": ref, "reference": (reference or "").strip()[:100] or None,
        "amount": amount, "currency": estate.currency, "status": "pending", "unit_id": unit.id,
        "estate_id": estate.id, "utility": utility, "payer_phone": payer_phone or None, "paid_at": utcnow(),
        "raw": {"api_key": key.prefix, "idempotency_key": idempotency_key[:255]}})
    if payment is None:
        existing = _existing(session, ref)
        balance, commodity = _balance(session, existing)
        return TopupResult(existing, balance, False, commodity)
    audit.record(session, "payment.api_received", payment, estate_id=estate.id,
                 new={"key": key.prefix, "unit": unit.number, "amount": str(amount), "reference": reference})
    created, pocket = credit_payment_to_pocket(session, payment, ceiling=ceiling, new_payment=True,
                                               receipt_later=True)
    if commit:
        session.commit()
    if pocket is not None and pocket.utility == payment.utility and "balance" in pocket.__dict__:
        return TopupResult(payment, pocket.balance, created, pocket.commodity)  # as the ledger's write left it
    balance, commodity = _balance(session, payment)
    return TopupResult(payment, balance, created, commodity)


def _existing(session: Session, ref: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.provider == PROVIDER, Payment.provider_ref == ref))


def _insert_payment(session: Session, values: dict) -> Payment | None:
    """INSERT the payment (loaded into the session as if flushed), or nothing when its
    (provider, provider_ref) is taken: None."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return session.scalars(insert(Payment).values(**values)
                           .on_conflict_do_nothing(index_elements=["provider", "provider_ref"])
                           .returning(Payment)).one_or_none()


def _balance(session: Session, payment: Payment) -> tuple[Decimal, str | None]:
    """The pocket's balance and commodity (one read, after the credit)."""
    row = session.execute(select(Account.balance, Account.commodity).join(Wallet, Account.wallet_id == Wallet.id)
                          .where(Wallet.unit_id == payment.unit_id, Account.utility == payment.utility,
                                 Account.kind == "pocket")).first()
    return (Decimal(0), None) if row is None else (row.balance, row.commodity)
