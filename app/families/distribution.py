"""One top-up distributed over a wallet group (F1): the rule's arithmetic, the preview, the checkout.

A payer enters one amount and picks a rule over the group's members that share a currency:
equal shares (the remainder to a stated member), fixed amounts per member, or "bring each to a
target balance" (never past it). `plan_legs()` is the arithmetic, pure and in minor units so the
legs always add up to the payment exactly. `preview()` says who takes part, who is left out and
why, and what each leg is. `start_distribution_checkout()` checks each leg against the payer's
top-up cap on that wallet (`check_leg_caps()`, locking the grants as a single top-up does; the API's
group top-up calls it too, for the group's owner), then records one PayFast
checkout for the total with its legs; when its ITN arrives `app.payments.credit.credit_payment()`
posts one balanced transaction per estate (`credit_distribution`).
"""
from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.families import FamilyError
from app.families.groups import SplitError, _ceil_minor, _major, _minor, split_equal, split_fixed
from app.models import Account, Unit, User, Wallet
from app.models.families import DISTRIBUTION_RULES, WalletDistribution, WalletDistributionLeg, WalletGroup
from app.models.payments import Payment
from app.money import MoneyError, format_amount, parse_amount, quantize

RULE_WORDS = {"equal": "Equal shares", "fixed": "A fixed amount each", "target": "Bring each to a target balance"}
# PayFast charges rand; the loti is pegged one to one (and Lesotho estates take PayFast top-ups
# already), other currencies need their estate's own channel.
PAYFAST_CURRENCIES = ("ZAR", "LSL")
SMALLEST_CHECKOUT = Decimal("5")


# --- the arithmetic (pure) ----------------------------------------------------------------

def plan_legs(rule: str, currency: str, *, amount: Decimal | None, balances: Sequence[Decimal],
              fixed: Sequence[Decimal] | None = None, target: Decimal | None = None,
              remainder_to: int = 0) -> list[Decimal]:
    """Each member's leg of one payment, in the members' order, exact in the currency's minor units.

    - equal: `amount` in equal shares, what cannot be shared to member `remainder_to`;
    - fixed: `fixed[i]` to member i; `amount`, when given, must be their sum;
    - target: what brings each balance up to `target`; a smaller `amount` is shared in proportion
      to what each misses, the rounding cents to `remainder_to` first, never past a target.
    Raises SplitError (field -> message) when the rule cannot be applied.
    """
    if not balances:
        raise SplitError({"members": _("No member of the group can take part in this top-up.")})
    if rule == "equal":
        if amount is None:
            raise SplitError({"amount": _("Enter the amount to share.")})
        return split_equal(amount, len(balances), currency, remainder_to=remainder_to)
    if rule == "fixed":
        if fixed is None or len(fixed) != len(balances):
            raise SplitError({"fixed": _("Enter an amount for each member (0 for none).")})
        legs = split_fixed(fixed, currency)
        if amount is not None and sum(legs) != quantize(amount, currency):
            raise SplitError({"amount": _("The amounts add up to %(sum)s, not %(amount)s: change one or the other.",
                                          sum=format_amount(sum(legs), currency),
                                          amount=format_amount(amount, currency))})
        return legs
    if rule == "target":
        if target is None:
            raise SplitError({"target": _("Enter the balance each wallet should reach.")})
        return _to_target(balances, target, currency, amount, remainder_to)
    raise SplitError({"rule": _("Choose how to share the top-up.")})


def _to_target(balances: Sequence[Decimal], target: Decimal, currency: str, amount: Decimal | None,
               remainder_to: int) -> list[Decimal]:
    goal = _minor(target, currency)
    if goal < 0:
        raise SplitError({"target": _("A target balance cannot be negative.")})
    needs = [max(goal - _ceil_minor(b, currency), 0) for b in balances]
    missing = sum(needs)
    if missing <= 0:
        raise SplitError({"target": _("Every member is already at or above that balance.")})
    if amount is None:
        return [_major(n, currency) for n in needs]
    total = _minor(amount, currency)
    if total <= 0:
        raise SplitError({"amount": _("Enter a positive amount.")})
    if total > missing:
        raise SplitError({"amount": _("That is more than the %(missing)s the members need to reach %(target)s: "
                                      "a target top-up never goes past it.",
                                      missing=format_amount(_major(missing, currency), currency),
                                      target=format_amount(target, currency))})
    legs = [total * n // missing for n in needs]
    rest = total - sum(legs)
    if 0 <= remainder_to < len(legs):  # the stated member first, up to its own need
        extra = min(rest, needs[remainder_to] - legs[remainder_to])
        legs[remainder_to] += extra
        rest -= extra
    order = sorted(range(len(needs)), key=lambda i: (-((total * needs[i]) % missing), i))
    for i in order:
        if rest <= 0:
            break
        if legs[i] < needs[i]:
            legs[i] += 1
            rest -= 1
    return [_major(x, currency) for x in legs]


# --- who takes part -----------------------------------------------------------------------

@dataclass
class Member:
    unit: Unit
    balance: Decimal  # the pocket's balance in money (the currency)


@dataclass
class Preview:
    """A distribution as the form shows it before paying; `errors` maps a field to its message."""

    group: WalletGroup
    currency: str | None
    utility: str
    rule: str
    currencies: list[str]
    members: list[Member] = field(default_factory=list)
    left_out: list[tuple[Unit, str]] = field(default_factory=list)
    legs: list[tuple[Member, Decimal]] = field(default_factory=list)
    remainder: Member | None = None
    remainder_amount: Decimal = Decimal(0)
    target: Decimal | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((amount for _, amount in self.legs), Decimal(0))

    @property
    def by_unit(self) -> dict[int, Decimal]:
        return {m.unit.id: amount for m, amount in self.legs}

    @property
    def paying(self) -> list[tuple[Member, Decimal]]:
        return [(m, a) for m, a in self.legs if a > 0]


def _pocket_balance(session: Session, unit_id: int, utility: str) -> tuple[Decimal, str] | None:
    row = session.execute(select(Account.balance, Account.commodity).join(Wallet, Wallet.id == Account.wallet_id)
                          .where(Wallet.unit_id == unit_id, Account.utility == utility)).first()
    return (Decimal(row[0]), row[1]) if row else None


def _why_left_out(session: Session, user: User, unit: Unit, currency: str, utility: str, rule: str) -> str | None:
    from app.auth.scope import wallet_actions
    from app.ledger.accounts import metered_utilities
    from app.payments.vendor_credit import vendor_customer_code

    if "distribute" not in wallet_actions(session, user, unit.id):
        return _("your access to this wallet no longer lets you top it up")
    if unit.estate.currency != currency:
        return _("its estate uses %(other)s; this top-up is in %(currency)s", other=unit.estate.currency,
                 currency=currency)
    if utility not in metered_utilities(session, unit.id):
        return _("it has no %(utility)s meter to top up", utility=utility.replace("_", " "))
    if vendor_customer_code(session, Payment(unit_id=unit.id)):
        return _("its meter is credited through SparkMeter: top it up on its own")
    if rule == "target" and unit.estate.wallet_denomination == "units":
        return _("its wallet counts kWh, not money, so it has no balance to bring to a target")
    return None


def group_currencies(group: WalletGroup, channel: Collection[str] | None = PAYFAST_CURRENCIES) -> list[str]:
    """The currencies a distribution over the group can be made in, most members first: those of
    the payment `channel` (PayFast's for a checkout), or every member's with None (money already
    received, such as an API top-up)."""
    counts: dict[str, int] = {}
    for member in group.members:
        counts[member.unit.estate.currency] = counts.get(member.unit.estate.currency, 0) + 1
    return sorted((c for c in counts if channel is None or c in channel), key=lambda c: (-counts[c], c))


def _amount(text: str | None, currency: str, name: str, errors: dict[str, str], *, optional: bool) -> Decimal | None:
    if not (text or "").strip():
        if not optional:
            errors[name] = _("Enter an amount like 100.00.")
        return None
    try:
        return quantize(parse_amount(text, currency), currency)
    except MoneyError:
        errors[name] = _("Enter an amount like 100.00 (%(currency)s).", currency=currency)
        return None


def preview(session: Session, group: WalletGroup, user: User, form: Mapping[str, str], *,
            channel: Collection[str] | None = PAYFAST_CURRENCIES) -> Preview:
    """Who takes part, who is left out and why, and each leg, for the distribution `form` describes
    (in a currency of `channel`, as `group_currencies`)."""
    currencies = group_currencies(group, channel)
    currency = form.get("currency") or (currencies[0] if currencies else None)
    utility = form.get("utility") or "electricity"
    rule = form.get("rule") or "equal"
    shown = Preview(group, currency if currency in currencies else None, utility,
                    rule if rule in DISTRIBUTION_RULES else "equal", currencies)
    if shown.currency is None:
        if channel == PAYFAST_CURRENCIES:
            shown.errors["currency"] = _("PayFast takes rand (and loti): no wallet in this group uses them.")
        else:
            shown.errors["currency"] = _("No wallet in this group uses %(currency)s.", currency=currency or "-")
        shown.left_out = [(m.unit, _("its estate uses %(other)s", other=m.unit.estate.currency)) for m in group.members]
        return shown
    currency = shown.currency
    for gm in group.members:
        reason = _why_left_out(session, user, gm.unit, currency, utility, shown.rule)
        if reason is None:
            held = _pocket_balance(session, gm.unit.id, utility)
            shown.members.append(Member(gm.unit, held[0] if held else Decimal(0)))
        else:
            shown.left_out.append((gm.unit, reason))
    if not shown.members:
        shown.errors["members"] = _("No member of the group can take part in this top-up.")
        return shown
    remainder_id = form.get("remainder_unit_id")
    ids = [str(m.unit.id) for m in shown.members]
    remainder_to = ids.index(remainder_id) if remainder_id in ids else 0
    errors = shown.errors
    amount = _amount(form.get("amount"), currency, "amount", errors, optional=shown.rule != "equal")
    fixed = None
    if shown.rule == "fixed":
        fixed = [_amount(form.get(f"fixed_{m.unit.id}"), currency, f"fixed_{m.unit.id}", errors, optional=True)
                 or Decimal(0) for m in shown.members]
    if shown.rule == "target":
        shown.target = _amount(form.get("target"), currency, "target", errors, optional=False)
    if errors:
        return shown
    try:
        legs = plan_legs(shown.rule, currency, amount=amount, balances=[m.balance for m in shown.members],
                         fixed=fixed, target=shown.target, remainder_to=remainder_to)
    except SplitError as error:
        errors.update(error.errors)
        return shown
    shown.legs = list(zip(shown.members, legs, strict=True))
    if shown.rule in ("equal", "target"):
        shown.remainder = shown.members[remainder_to]
        if shown.rule == "equal":
            shown.remainder_amount = legs[remainder_to] - min(legs)
    if shown.total < SMALLEST_CHECKOUT:
        errors["amount"] = _("The smallest top-up is %(least)s.", least=format_amount(SMALLEST_CHECKOUT, currency))
    return shown


# --- the checkout -------------------------------------------------------------------------


def record_distribution(session: Session, payment: Payment, group: WalletGroup, shown, owner_user_id: int
                        ) -> WalletDistribution:
    """Add the payment (flushed for its id) and its distribution over the group's paying members, as
    `shown` (a preview) planned them; the crediting path reads the legs from it."""
    session.add(payment)
    session.flush()
    distribution = WalletDistribution(
        payment_id=payment.id, group_id=group.id, rule=shown.rule, currency=shown.currency, utility=shown.utility,
        target=shown.target, remainder_unit_id=shown.remainder.unit.id if shown.remainder else None,
        created_by_user_id=owner_user_id,
        legs=[WalletDistributionLeg(unit_id=m.unit.id, estate_id=m.unit.estate_id, amount=a) for m, a in shown.paying])
    session.add(distribution)
    session.flush()
    return distribution


def check_leg_caps(session: Session, user: User, legs: Sequence[tuple[Member, Decimal]], *,
                   expired_before: datetime, now: datetime | None = None) -> None:
    """Check every leg against the payer's top-up cap on that wallet (`limits.check_topup_cap`, which
    locks the grant; the legs in one lock order, so no deadlock); the caller commits.

    Raises CapReached with the message under `amount` and each refused leg under `leg_<unit id>`."""
    from app.families.limits import CapReached, check_topup_cap

    refused: dict[str, str] = {}
    for member, amount in sorted(legs, key=lambda leg: leg[0].unit.id):
        try:
            check_topup_cap(session, user, member.unit, amount, expired_before=expired_before, now=now)
        except CapReached as error:
            refused[f"leg_{member.unit.id}"] = _("Unit %(unit)s: %(why)s", unit=member.unit.number,
                                                 why=error.errors["amount"])
    if refused:
        raise CapReached({"amount": _("Part of this top-up is above your top-up limit; change the amounts "
                                      "and try again."), **refused})


def start_distribution_checkout(session: Session, settings, group: WalletGroup, user: User, form: Mapping[str, str],
                                *, return_url: str, cancel_url: str, notify_url: str,
                                now: datetime | None = None) -> tuple[Payment, dict[str, str], Preview]:
    """Check every leg against the payer's caps, then record one PayFast checkout with its legs; commits once.

    Raises FamilyError with the message next to the field (or, for a cap, next to the member)."""
    from app.payments import payfast
    from app.payments.credit import check_amount

    shown = preview(session, group, user, form)
    if shown.errors:
        raise FamilyError(shown.errors)
    legs = shown.paying
    check_amount(session, shown.total, legs[0][0].unit.estate)
    check_leg_caps(session, user, legs, expired_before=payfast.checkout_expiry_cutoff(now), now=now)
    first = legs[0][0].unit.estate
    payment = Payment(provider="payfast", checkout_id=secrets.token_hex(8), estate_id=first.id, unit_id=None,
                      utility=shown.utility, amount=shown.total, currency=shown.currency, status="pending",
                      created_by_user_id=user.id, payer_email=(user.person.email if user.person else None) or user.email)
    record_distribution(session, payment, group, shown, user.id)
    audit.record(session, "payment.checkout", payment, estate_id=first.id,
                 new={"group": group.name, "utility": shown.utility, "amount": str(shown.total),
                      "rule": shown.rule, "legs": {m.unit.number: str(a) for m, a in legs}})
    fields = {
        "merchant_id": settings.merchant_id, "merchant_key": settings.merchant_key,
        "return_url": return_url, "notify_url": notify_url,
        "cancel_url": cancel_url.replace("{checkout_id}", payment.checkout_id),
        "email_address": payment.payer_email or "", "m_payment_id": payment.checkout_id,
        "amount": f"{shown.total:.2f}",
        "item_name": f"Group top-up {group.name}"[:100],
        "custom_str1": shown.utility, "custom_str2": f"group:{group.id}",
    }
    fields = {k: v.strip() for k, v in fields.items() if v and v.strip()}
    fields["signature"] = payfast.checkout_signature(fields, settings.passphrase)
    session.commit()
    return payment, fields, shown


def distribution_of(session: Session, payment_id: int) -> WalletDistribution | None:
    return session.scalar(select(WalletDistribution).where(WalletDistribution.payment_id == payment_id))


def my_distributions(session: Session, user: User, limit: int = 50) -> list[WalletDistribution]:
    """The person's distributed top-ups, newest first (payments page, group page)."""
    return list(session.scalars(select(WalletDistribution).where(WalletDistribution.created_by_user_id == user.id)
                                .order_by(WalletDistribution.created_at.desc(), WalletDistribution.id.desc())
                                .limit(limit)))


def group_distributions(session: Session, group: WalletGroup, limit: int = 20) -> list[WalletDistribution]:
    """The group's distributed top-ups, newest first, without abandoned checkouts."""
    return list(session.scalars(select(WalletDistribution).join(Payment, Payment.id == WalletDistribution.payment_id)
                                .where(WalletDistribution.group_id == group.id,
                                       Payment.status.in_(("pending", "credited", "reversed")))
                                .order_by(WalletDistribution.created_at.desc(), WalletDistribution.id.desc())
                                .limit(limit)))
