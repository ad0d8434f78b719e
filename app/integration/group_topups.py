"""Group top-ups through the API (POST /api/v1/wallet-groups/{id}/topups): one vendor payment
shared over a family wallet group by the group's own rule arithmetic, credited at once.

The payment is a `Payment` of provider "api" with no unit and a `WalletDistribution` of legs,
exactly what a PayFast group checkout records (app/families/distribution.py), so
`credit_payment()` posts it through `credit_distribution` (one balanced transaction per estate,
arrears recovery, receipts and `wallet.topup` webhooks per wallet). Who takes part is what the
group's owner may top up (`distribution.preview` with the owner): the key pays on the owner's
behalf into the owner's group, so the owner's top-up caps (a wallet grant's daily and monthly
caps) apply to each leg as in the pages' checkout (`distribution.check_leg_caps`), and the
payment counts towards them (it is the owner's: `created_by_user_id`).

The money was received by the integrator, so PayFast's currency limit (rand and loti) does not
apply: any currency of the group's estates, in its minor units (XOF has none). Keyed by the API
key and the Idempotency-Key like single API top-ups.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.families import FamilyError
from app.families.distribution import check_leg_caps, group_currencies, preview, record_distribution
from app.models import Account, User, Wallet, utcnow
from app.models.api import ApiKey
from app.models.families import WalletDistribution, WalletGroup
from app.models.payments import Payment
from app.payments import payfast
from app.payments.credit import check_amount, credit_payment

PROVIDER = "api"


@dataclass(frozen=True)
class Leg:
    unit_id: int
    estate_id: int
    amount: Decimal
    transaction_id: int | None
    balance: Decimal
    commodity: str  # of the pocket: the currency, or KWH / KL in a units estate


@dataclass(frozen=True)
class GroupTopupResult:
    payment: Payment
    distribution: WalletDistribution
    legs: list[Leg]
    left_out: list[tuple[int, str]] = field(default_factory=list)
    created: bool = True


def provider_ref(key: ApiKey, idempotency_key: str) -> str:
    """The payment's provider reference: `g`, the key and a digest of its Idempotency-Key (fits 64)."""
    return f"g{key.id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"


def currency_for(group: WalletGroup, wanted: str | None) -> str:
    """The currency to top the group up in: `wanted` (any case) or the one most members use;
    FamilyError when no member's estate uses it."""
    available = group_currencies(group, None)
    currency = (wanted or "").strip().upper() or (available[0] if available else "")
    if currency not in available:
        raise FamilyError({"currency": f"no wallet in this group is in an estate that uses {currency or 'it'}: "
                                       f"pay in {' or '.join(available) or 'a member estate currency'}"})
    return currency


def group_topup(session: Session, key: ApiKey, group: WalletGroup, form: dict[str, str], *,
                idempotency_key: str, reference: str | None = None, commit: bool = True) -> GroupTopupResult:
    """Share and credit one API payment over the group (or return the one made under this key); commits
    unless `commit` is False (the API's Idempotency-Key wrapper commits the claim, the credit and the
    stored response together).

    `form` is what the group top-up form posts (rule, utility, currency, amount, fixed_<unit id>,
    target, remainder_unit_id). Raises FamilyError (field -> message) when the rule cannot be
    applied (CapReached when a leg is above the owner's top-up cap on that wallet), and PaymentError
    (AmountOutOfRange) for a total outside the estate's limits. The caller checks the amounts'
    decimals (`topups.check_places`, to name its own fields); the preview refuses them too.
    """
    ref = provider_ref(key, idempotency_key)
    existing = session.scalar(select(Payment).where(Payment.provider == PROVIDER, Payment.provider_ref == ref))
    if existing is not None:
        distribution = session.scalar(select(WalletDistribution).where(WalletDistribution.payment_id == existing.id))
        return GroupTopupResult(existing, distribution, _legs(session, distribution), created=False)
    owner = session.get(User, group.owner_user_id)
    shown = preview(session, group, owner, {**form, "currency": currency_for(group, form.get("currency"))},
                    channel=None)
    if shown.errors:
        raise FamilyError(shown.errors)
    legs = shown.paying
    first = legs[0][0].unit.estate
    check_amount(session, shown.total, first)
    check_leg_caps(session, owner, legs, expired_before=payfast.checkout_expiry_cutoff())
    payment = Payment(provider=PROVIDER, provider_ref=ref, reference=(reference or "").strip()[:100] or None,
                      amount=shown.total, currency=shown.currency, status="pending", unit_id=None,
                      estate_id=first.id, utility=shown.utility, paid_at=utcnow(), created_by_user_id=owner.id,
                      raw={"api_key": key.prefix, "idempotency_key": idempotency_key[:255], "group": group.id})
    distribution = record_distribution(session, payment, group, shown, owner.id)
    audit.record(session, "payment.api_received", payment, estate_id=first.id,
                 new={"key": key.prefix, "group": group.name, "utility": shown.utility, "amount": str(shown.total),
                      "rule": shown.rule, "legs": {m.unit.number: str(a) for m, a in legs},
                      "reference": reference})
    credit_payment(session, payment)
    if commit:
        session.commit()
    return GroupTopupResult(payment, distribution, _legs(session, distribution),
                            [(unit.id, reason) for unit, reason in shown.left_out])


def _legs(session: Session, distribution: WalletDistribution) -> list[Leg]:
    pockets = {unit_id: (balance, commodity) for unit_id, balance, commodity in session.execute(
        select(Wallet.unit_id, Account.balance, Account.commodity).join(Account, Account.wallet_id == Wallet.id).where(
            Wallet.unit_id.in_([leg.unit_id for leg in distribution.legs]), Account.kind == "pocket",
            Account.utility == distribution.utility))}
    return [Leg(leg.unit_id, leg.estate_id, leg.amount, leg.transaction_id,
                *pockets.get(leg.unit_id, (Decimal(0), distribution.currency))) for leg in distribution.legs]
