"""The one way a received payment reaches a wallet: `credit_payment()`, used by every provider."""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.orm import Session

from app import audit
from app.i18n.stored import N_, fill
from app.estates.settings_catalog import setting_default
from app.settings import get_setting
from app.labels import label
from app.jobs import enqueue_after_commit, job
from app.ledger import Entry, post, post_many
from app.ledger.accounts import metered_utilities, open_wallet, system_account
from app.models import Account, Estate, LedgerTransaction, Tenancy, Unit, utcnow
from app.models.meter import UTILITIES
from app.models.payments import Payment
from app.payments import PaymentError
from app.money import format_amount, quantize

log = logging.getLogger(__name__)
PROVIDER_LABELS = {"payfast": "PayFast", "mpesa": "M-PESA", "eft": "EFT"}
PROVIDER_LABELS["api"] = "API"  # issue 21: top-ups from external vendors through /api/v1/topups
PROVIDER_LABELS["agent"] = "Agent"  # issue 15: agents' bulk top-ups from the estate's agent float
# The largest single payment any path accepts: the estate setting, else the global setting,
# else the PAYMENT_MAX_AMOUNT config value (50 000 by default).
MAX_AMOUNT_SETTING = "payment_max_amount"
DEFAULT_MAX_AMOUNT: str = setting_default(MAX_AMOUNT_SETTING)
RECEIPTS_JOB = "payment_receipts"  # credit_payments(): the batch's receipts, rendered after the commit


class AmountOutOfRange(PaymentError):
    """The amount is not positive, or above the payment ceiling."""


def payment_ceiling(session: Session, estate_id: int | None) -> Decimal:
    """The largest amount one payment may have in this estate (or anywhere, for None)."""
    try:
        from flask import current_app
        fallback = current_app.config.get("PAYMENT_MAX_AMOUNT", DEFAULT_MAX_AMOUNT)
    except RuntimeError:  # no application context: a bare script keeps the default
        fallback = DEFAULT_MAX_AMOUNT
    return Decimal(str(get_setting(session, MAX_AMOUNT_SETTING, estate_id, default=fallback)))


def check_amount(session: Session, amount: Decimal, estate: Estate | None, *,
                 ceiling: Decimal | None = None) -> Decimal:
    """Refuse an amount that is not positive or above the ceiling (read here unless given);
    every payment path calls this."""
    if amount <= 0:
        raise AmountOutOfRange(fill(N_("amount %(amount)s is not a positive number: only positive amounts can be "
                                       "credited"), amount=amount))
    if ceiling is None:
        ceiling = payment_ceiling(session, estate.id if estate is not None else None)
    if amount > ceiling:
        def shown(value: Decimal) -> str:
            return format_amount(value, estate.currency) if estate is not None else f"{value:.2f}"
        raise AmountOutOfRange(fill(N_("%(amount)s is above the largest payment accepted (%(ceiling)s)"),
                                    amount=shown(amount), ceiling=shown(ceiling)))
    return amount


@dataclass
class _Credit:
    """One payment checked and ready to post: its entry, pocket and arrears recovery."""

    payment: Payment
    unit: Unit
    estate: Estate
    utility: str
    levy: bool
    amount: Decimal
    pocket: Account
    recovery: object
    entry: Entry


def credit_payment(session: Session, payment: Payment, *, user_id: int | None = None,
                   ceiling: Decimal | None = None, new_payment: bool = False, receipt_later: bool = False) -> bool:
    """Post the payment into its unit's pocket once; return False when it was already credited.

    A caller that did some of the work already may say so (the API's top-ups, issue 21):
    `ceiling`, the estate's payment ceiling it just read; `new_payment`, the payment row was
    added in this very transaction, so no ledger transaction can carry its key yet; and
    `receipt_later`, send the receipt from the `payment_receipts` job once the caller commits
    instead of rendering it in the request. Without them, nothing changes.
    """
    return credit_payment_to_pocket(session, payment, user_id=user_id, ceiling=ceiling, new_payment=new_payment,
                                    receipt_later=receipt_later)[0]


def credit_payment_to_pocket(session: Session, payment: Payment, *, user_id: int | None = None,
                             ceiling: Decimal | None = None, new_payment: bool = False,
                             receipt_later: bool = False) -> tuple[bool, Account | None]:
    """`credit_payment()`, also returning the wallet pocket credited (None: a levy or a group's
    payment), whose balance the ledger has just set on it (a caller showing it reads nothing)."""
    if payment.unit_id is None and payment.id is not None and _is_distribution(session, payment):
        return credit_distribution(session, payment, user_id=user_id), None  # issue 17: a group's wallets
    cache = {"ceiling": {payment.estate_id: ceiling}, "clearing": {}} if ceiling is not None else None
    credit = _prepare(session, payment, user_id=user_id, cache=cache, never_posted=new_payment)
    if new_payment:  # no transaction can hold the key of a payment row inserted in this transaction
        credit.entry.new_key = True
    created = _record(session, credit, post(session, credit.entry))
    if created and not credit.levy:  # the owner's levy: no meter to restore, no tenant receipt
        _after_pocket_change(session, [credit.pocket.id])
        # What the rest may act on, in one read: an open arrears episode, an endpoint that may
        # listen for wallet.topup, a SparkMeter meter. Each step then decides as it always did.
        episode, hooked, vendor = _after_credit_lookups(session, credit.unit, credit.estate)
        if episode:
            from app.billing.ladder import after_payment
            after_payment(session, credit.unit)  # A4: a cleared debt ends its episode and lifts the ladder's holds
        if receipt_later:
            enqueue_after_commit(session, RECEIPTS_JOB, [payment.id], track=False)
        else:
            _send_receipt(session, payment, credit.unit, credit.estate, credit.pocket.id)
        if hooked:
            _emit_topup_webhook(session, payment, credit.unit, credit.estate, credit.pocket.id)  # issue 21
        if vendor:
            # P5, decided here for every provider: a SparkMeter meter only supplies what Koios holds.
            from app.payments.vendor_credit import queue_vendor_push
            queue_vendor_push(session, payment)
    return created, (None if credit.levy else credit.pocket)


def _after_credit_lookups(session: Session, unit: Unit, estate: Estate) -> tuple[bool, bool, bool]:
    """Whether the unit has an open arrears episode (`after_payment()`), whether an endpoint may
    listen for wallet.topup in the estate (`subscribed()` decides exactly) and whether the unit
    has a SparkMeter meter (`queue_vendor_push()`): three EXISTS in one statement."""
    row = session.execute(_after_credit_statement(), {"unit_id": unit.id, "estate_id": estate.id}).one()
    return bool(row[0]), bool(row[1]), bool(row[2])


@cache
def _after_credit_statement():
    """The three EXISTS, built once: its parameters are the unit and the estate."""
    from sqlalchemy import exists

    from app.models.api import WebhookEndpoint
    from app.models.debt import ArrearsEpisode
    from app.models.meter import Meter
    from app.notify.webhooks_out import may_listen
    from app.payments.vendor_credit import vendor_meter

    unit_id, estate_id = bindparam("unit_id", type_=Integer), bindparam("estate_id", type_=Integer)
    return select(
        exists().where(ArrearsEpisode.unit_id == unit_id, ArrearsEpisode.closed_at.is_(None)),
        exists().select_from(WebhookEndpoint).where(may_listen("wallet.topup", estate_id)),
        exists().select_from(Meter).where(vendor_meter(unit_id)))


def credit_payments(session: Session, payments: list[Payment], *,
                    user_id: int | None = None) -> list[bool | PaymentError]:
    """Credit many payments at once, each as its own ledger transaction, as `credit_payment()` would.

    For bulk top-ups (issue 15): the entries are checked first, posted together by one
    `post_many()`, credit control runs once over the touched pockets and the receipts are
    rendered and sent by one `payment_receipts` job after the caller commits. Recovery of
    arrears, the audit row, the ladder, the `wallet.topup` webhook and the vendor push apply
    to each payment exactly as in `credit_payment()`. Returns, per payment in order, True
    (credited now), False (credited before: nothing posted) or the PaymentError that refused
    it (nothing posted for it; the caller records the refusal). Never commits.
    """
    from app.billing.ladder import after_payment
    from app.models import Wallet
    from app.models.arrears import ArrearsRecord
    from app.models.debt import ArrearsEpisode
    from app.payments.vendor_credit import queue_vendor_push, vendor_units

    outcomes: list[bool | PaymentError | None] = [None] * len(payments)
    units = {u.id: u for u in session.scalars(select(Unit).where(
        Unit.id.in_({p.unit_id for p in payments if p.unit_id is not None} or {0})))}
    pockets = {(w_unit, a.utility): a for a, w_unit in session.execute(
        select(Account, Wallet.unit_id).join(Wallet, Wallet.id == Account.wallet_id)
        .where(Wallet.unit_id.in_(set(units) or {0})))}
    estate_ids = {u.estate_id for u in units.values()}
    owing = set(session.scalars(select(ArrearsRecord.estate_id).where(  # estates with any open arrears
        ArrearsRecord.estate_id.in_(estate_ids or {0}), ArrearsRecord.status == "open").distinct()))
    posted_keys = set(session.scalars(select(LedgerTransaction.idempotency_key).where(
        LedgerTransaction.idempotency_key.in_({p.idempotency_key for p in payments if p.provider_ref} or {""}))))
    cache: dict = {"ceiling": {}, "clearing": {}}
    credits: list[tuple[int, _Credit]] = []
    for index, payment in enumerate(payments):
        try:
            credits.append((index, _prepare(
                session, payment, user_id=user_id, cache=cache,
                pocket=pockets.get((payment.unit_id, payment.utility)),
                never_posted=payment.idempotency_key not in posted_keys,
                may_owe=units.get(payment.unit_id) is None or units[payment.unit_id].estate_id in owing)))
        except PaymentError as error:
            outcomes[index] = error
    posted = post_many(session, [credit.entry for _, credit in credits])
    done: list[_Credit] = []
    for (index, credit), result in zip(credits, posted, strict=True):
        outcomes[index] = _record(session, credit, result)
        if outcomes[index] and not credit.levy:
            done.append(credit)
    if not done:
        return outcomes
    _after_pocket_change(session, [credit.pocket.id for credit in done])  # C7, once for the batch
    in_episode = set(session.scalars(select(ArrearsEpisode.unit_id).where(
        ArrearsEpisode.unit_id.in_({c.unit.id for c in done}), ArrearsEpisode.closed_at.is_(None))))
    vendor = vendor_units(session, {c.unit.id for c in done})
    from app.notify.webhooks_out import subscribed
    hooked = {estate_id for estate_id in {c.estate.id for c in done} if subscribed(session, "wallet.topup", estate_id)}
    for credit in done:
        if credit.unit.id in in_episode:
            after_payment(session, credit.unit)
        if credit.estate.id in hooked:
            _emit_topup_webhook(session, credit.payment, credit.unit, credit.estate, credit.pocket.id, listened=True)
        if credit.unit.id in vendor:
            queue_vendor_push(session, credit.payment)
    session.flush()
    enqueue_after_commit(session, RECEIPTS_JOB, [c.payment.id for c in done], track=False)
    return outcomes


def _prepare(session: Session, payment: Payment, *, user_id: int | None, cache: dict | None = None,
             pocket: Account | None = None, never_posted: bool = False, may_owe: bool = True) -> _Credit:
    """Check the payment and build its ledger entry (nothing posted); raise PaymentError to refuse it.

    `credit_payments()` passes what it looked up for the whole batch: a cache of ceilings and
    clearing accounts, the pocket, `never_posted` when no transaction has the key yet, and
    `may_owe=False` when the estate has no open arrears.
    """
    if payment.provider_ref is None:
        raise PaymentError(N_("the payment has no provider reference to key the ledger entry"))
    if payment.unit_id is None:
        raise PaymentError(N_("the payment is not assigned to a unit"))
    unit = session.get(Unit, payment.unit_id)
    estate = session.get(Estate, unit.estate_id)
    if payment.currency and payment.currency != estate.currency:
        raise PaymentError(fill(N_("the payment is in %(currency)s; %(estate)s uses %(estate_currency)s"),
                                currency=payment.currency, estate=estate.name, estate_currency=estate.currency))
    # A payment that names no pocket goes to the unit's first metered one (electricity first).
    utility = payment.utility or (metered_utilities(session, unit.id) or UTILITIES)[0]
    levy = utility == "levy"  # a levy payment (app.billing.levies): the owner's levy pocket, never the wallet
    if utility not in UTILITIES and not levy:
        raise PaymentError(fill(N_("unknown utility %(utility)s"), utility=repr(utility)))
    ceiling = None
    if cache is not None:  # a batch reads each estate's ceiling once
        if estate.id not in cache["ceiling"]:
            cache["ceiling"][estate.id] = payment_ceiling(session, estate.id)
        ceiling = cache["ceiling"][estate.id]
    amount = check_amount(session, quantize(payment.amount, estate.currency), estate, ceiling=ceiling)
    clearing = (cache or {}).get("clearing", {}).get((estate.id, payment.provider))
    if levy:
        from app.ledger.accounts import owner_pocket
        pocket = owner_pocket(session, unit, "levy")
    elif pocket is None or pocket.utility != utility:
        pocket, found = _wallet_pocket(session, unit, utility, None if clearing is not None else
                                       (estate.id, f"clearing:{payment.provider}"))  # only the pocket posted to
        clearing = clearing or found
    if clearing is None:
        clearing = system_account(session, estate, "clearing", payment.provider,
                                  name=f"{PROVIDER_LABELS.get(payment.provider, payment.provider)} clearing")
    if cache is not None:
        cache["clearing"][(estate.id, payment.provider)] = clearing
    legs: list[tuple[int, Decimal]] = [(clearing.id, -amount)]
    # A4: the estate's recovery share pays open arrears first, in this same transaction (not on a
    # levy payment: app.billing.levies pays levy arrears itself).
    from app.billing.recovery import Recovery, describe, plan_recovery, posted_legs
    replayed = None if never_posted else posted_legs(session, payment.idempotency_key)  # a replay repeats its legs
    recovery = (plan_recovery(session, estate, unit, amount) if replayed is None and not levy and may_owe
                else Recovery())
    legs += recovery.legs()
    to_pocket = amount - recovery.total
    bought = format_amount(to_pocket, estate.currency)
    if to_pocket > 0 and estate.wallet_denomination == "units" and not levy:
        unit_legs, bought = _units_legs(session, estate, utility, pocket, to_pocket, payment.paid_at or utcnow())
        legs += unit_legs
    elif to_pocket > 0:
        legs.append((pocket.id, to_pocket))
    entry = Entry(
        estate_id=estate.id, kind="topup", idempotency_key=payment.idempotency_key,
        legs=legs if replayed is None else replayed, occurred_at=payment.paid_at, created_by_user_id=user_id,
        memo=f"{PROVIDER_LABELS.get(payment.provider, payment.provider)} top-up "
             f"{format_amount(amount, estate.currency)}: {utility.replace('_', ' ')} {bought} "
             f"({payment.provider_ref})" + (f"; {describe(recovery, estate.currency)}" if recovery.total else ""),
    )
    return _Credit(payment, unit, estate, utility, levy, amount, pocket, recovery, entry)


def _wallet_pocket(session: Session, unit: Unit, utility: str,
                   clearing: tuple[int, str] | None = None) -> tuple[Account, Account | None]:
    """The unit's wallet pocket for `utility` in one read, opened (with its wallet) when missing;
    with `clearing` (estate id, code), that system account too in the same read (None if absent:
    `system_account()` opens it)."""
    from sqlalchemy import literal, union_all

    from app.models import Wallet

    if clearing is None:
        pocket = session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
            Wallet.unit_id == unit.id, Account.kind == "pocket", Account.utility == utility))
        found = None
    else:
        pockets = (select(Account.id, literal(0).label("which")).join(Wallet, Wallet.id == Account.wallet_id)
                   .where(Wallet.unit_id == unit.id, Account.kind == "pocket", Account.utility == utility))
        both = union_all(pockets, select(Account.id, literal(1).label("which")).where(
            Account.estate_id == clearing[0], Account.code == clearing[1])).subquery()
        pocket = found = None
        for account, which in session.execute(select(Account, both.c.which).join(both, both.c.id == Account.id)):
            if which == 0:
                pocket = account
            else:
                found = account
    return (pocket if pocket is not None else open_wallet(session, unit, (utility,)).pocket(utility)), found


def _record(session: Session, credit: _Credit, posted) -> bool:
    """Mark the payment credited by its posted transaction; audit and close paid arrears when new."""
    from app.billing.recovery import close_cleared

    payment, estate = credit.payment, credit.estate
    was = payment.status
    payment.estate_id, payment.utility, payment.currency = estate.id, credit.utility, estate.currency
    payment.status, payment.status_reason = "credited", None
    payment.transaction_id = posted.transaction_id
    payment.credited_at = payment.credited_at or utcnow()
    if posted.created:
        audit.record(session, "payment.credited", payment, estate_id=estate.id,
                     old={"status": was},
                     new={"status": "credited", "unit": credit.unit.number, "utility": credit.utility,
                          "amount": str(credit.amount), "key": payment.idempotency_key})
        close_cleared(session, credit.recovery, occurred_at=payment.paid_at)
    return posted.created


def _units_legs(session: Session, estate: Estate, utility: str, pocket, amount: Decimal,
                moment) -> tuple[list[tuple[int, Decimal]], str]:
    """Units mode (C1): sell kWh/kL at the price in force at purchase; the money is revenue now."""
    from app.billing.tariffs import price_on, unit_prices
    from app.models import Wallet

    unit_id = session.scalar(select(Wallet.unit_id).where(Wallet.id == pocket.wallet_id))
    versions = unit_prices(session, estate.id, unit_id, utility)  # at the unit's tariff class's price
    price = price_on(versions, moment.astimezone(estate.tz).date())
    rate = None
    if price is not None and price.kind == "flat":
        rate = price.rates.get("rate")
    elif price is not None and price.kind == "tou":
        rate = price.rates.get("default_rate")
    if not rate or Decimal(str(rate)) <= 0:
        raise PaymentError(fill(N_("%(estate)s sells %(utility)s in units and has no flat or time-of-use price in "
                                   "force to sell them at"), estate=estate.name, utility=utility.replace("_", " ")))
    rate = Decimal(str(rate))
    quantity = quantize(amount / rate, pocket.commodity)
    if quantity <= 0:
        raise PaymentError(N_("the amount buys less than the smallest unit"))
    revenue = system_account(session, estate, "revenue", utility, utility=utility)
    issued = system_account(session, estate, "units_issued", utility, utility=utility,
                            commodity=pocket.commodity)
    legs = [(revenue.id, amount), (issued.id, -quantity), (pocket.id, quantity)]
    return legs, f"{format_amount(quantity, pocket.commodity)} at {format_amount(rate, estate.currency)}"


def current_tenant_persons(session: Session, unit_id: int):
    """Return the people renting the unit today."""
    from datetime import date

    from app.models import Person
    today = date.today()
    return list(session.scalars(
        select(Person).join(Tenancy, Tenancy.person_id == Person.id)
        .where(Tenancy.unit_id == unit_id, Tenancy.move_in <= today,
               (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today))))


def _after_pocket_change(session: Session, account_ids: list[int]) -> None:
    """Let credit control restore supply (C7) when that module is present."""
    try:
        module = importlib.import_module("app.metering.credit_control")
    except ImportError:
        return
    hook = getattr(module, "after_pocket_change", None)
    if hook is not None:
        hook(session, account_ids)


def _send_receipt(session: Session, payment: Payment, unit: Unit, estate: Estate, pocket_id: int) -> None:
    """P6: tell the payer (SMS to the paying phone, else the tenants by email) the new balance."""
    from app.models import Account, Person
    from app.notify import notify

    balance, commodity = session.execute(
        select(Account.balance, Account.commodity).where(Account.id == pocket_id)).one()
    context = {"payment": payment, "unit": unit, "estate": estate,
               "amount": format_amount(payment.amount, estate.currency),
               "balance": format_amount(Decimal(balance), commodity),
               "utility": label("pocket", payment.utility).lower()}
    from app.billing.recovery import payment_recovery
    if recovered := payment_recovery(session, payment):  # A4: the share that paid arrears
        context["recovered"] = format_amount(recovered, estate.currency)
    try:
        if payment.payer_phone:
            # The payer may be no one we know: a transient person only carries the number.
            notify(session, "payment_receipt", context, channels=("sms",),
                   person=Person(full_name=payment.payer_name or payment.payer_phone,
                                 phone=payment.payer_phone))
        for person in current_tenant_persons(session, unit.id):
            from app.models import User
            user = session.scalar(select(User).where(User.person_id == person.id))
            notify(session, "payment_receipt", context, user=user, person=person,
                   channels=("in_app", "email") if user else ("email",))
    except RuntimeError:  # no application context (a bare script): receipts need templates
        log.warning("receipt for payment %s not sent: no application context", payment.id)


def _emit_topup_webhook(session: Session, payment: Payment, unit: Unit, estate: Estate, pocket_id: int, *,
                        listened: bool = False) -> None:
    """Tell webhook subscribers (A7) about the credited top-up, sent once the caller commits."""
    from app.models import Account
    from app.notify.webhooks_out import emit, subscribed

    if not listened and not subscribed(session, "wallet.topup", estate.id):
        return  # no one listens: skip the balance read (emit() would queue nothing)
    balance, commodity = session.execute(select(Account.balance, Account.commodity).where(Account.id == pocket_id)).one()
    emit(session, "wallet.topup", estate.id, {
        "payment_id": payment.id, "provider": payment.provider, "unit_id": unit.id, "unit": unit.number,
        "estate_id": estate.id, "utility": payment.utility, "amount": str(quantize(payment.amount, estate.currency)),
        "currency": estate.currency, "balance": str(quantize(balance, commodity)), "commodity": commodity,
        "transaction_id": payment.transaction_id})


@job(RECEIPTS_JOB)
def payment_receipts_job(session: Session, progress, payment_ids: list[int]) -> str:
    """Send the receipts of payments credited together by `credit_payments()`; commits once."""
    progress.set_total(len(payment_ids))
    sent = 0
    for payment in session.scalars(select(Payment).where(Payment.id.in_(payment_ids or [0])).order_by(Payment.id)):
        if payment.status != "credited" or payment.unit_id is None:
            continue
        unit = session.get(Unit, payment.unit_id)
        estate = session.get(Estate, unit.estate_id)
        pocket = open_wallet(session, unit, (payment.utility,)).pocket(payment.utility)
        _send_receipt(session, payment, unit, estate, pocket.id)
        sent += 1
        progress.step()
    session.commit()
    return fill(N_("%(sent)s receipts sent"), sent=sent)
# --- issue 17: one payment distributed over a family wallet group ---------------------------

def _is_distribution(session: Session, payment: Payment) -> bool:
    from app.models.families import WalletDistribution

    return session.scalar(select(WalletDistribution.id).where(WalletDistribution.payment_id == payment.id)) is not None


def credit_distribution(session: Session, payment: Payment, *, user_id: int | None = None) -> bool:
    """Post a group top-up (F1): one balanced transaction per estate, each leg into its wallet's
    pocket (arrears recovery and units mode as for a single top-up), all tied to the one payment.

    Reached through `credit_payment()`; returns False when it was already credited. Each estate's
    transaction is keyed `<payment key>:estate:<id>`, so a replayed ITN posts nothing twice.
    """
    from app.billing.ladder import after_payment
    from app.billing.recovery import Recovery, close_cleared, describe, plan_recovery, posted_legs
    from app.models.families import WalletDistribution

    distribution = session.scalar(select(WalletDistribution).where(WalletDistribution.payment_id == payment.id))
    utility = distribution.utility
    if utility not in UTILITIES:
        raise PaymentError(fill(N_("unknown utility %(utility)s"), utility=repr(utility)))
    total = quantize(payment.amount, distribution.currency)
    if sum((leg.amount for leg in distribution.legs), Decimal(0)) != total:
        raise PaymentError(fill(N_("the distribution's legs do not add up to the payment of %(total)s"), total=total))
    provider = PROVIDER_LABELS.get(payment.provider, payment.provider)
    by_estate: dict[int, list] = {}
    for leg in distribution.legs:
        by_estate.setdefault(leg.estate_id, []).append(leg)
    done = []  # (estate, leg, unit, pocket, recovery) of the legs posted now
    created_any, first_transaction = False, None
    for estate_id in sorted(by_estate):
        estate = session.get(Estate, estate_id)
        if estate.currency != distribution.currency:
            raise PaymentError(fill(N_("the payment is in %(currency)s; %(estate)s uses %(estate_currency)s"),
                                    currency=distribution.currency, estate=estate.name,
                                    estate_currency=estate.currency))
        legs_here = by_estate[estate_id]
        amount = check_amount(session, sum((leg.amount for leg in legs_here), Decimal(0)), estate)
        key = f"{payment.idempotency_key}:estate:{estate.id}"
        replayed = posted_legs(session, key)
        clearing = system_account(session, estate, "clearing", payment.provider, name=f"{provider} clearing")
        legs: list[tuple[int, Decimal]] = [(clearing.id, -amount)]
        parts, planned = [], []
        for leg in legs_here:
            unit = session.get(Unit, leg.unit_id)
            pocket = open_wallet(session, unit, (utility,)).pocket(utility)
            recovery = plan_recovery(session, estate, unit, leg.amount) if replayed is None else Recovery()
            legs += recovery.legs()
            to_pocket = leg.amount - recovery.total
            bought = format_amount(to_pocket, estate.currency)
            if to_pocket > 0 and estate.wallet_denomination == "units":
                unit_legs, bought = _units_legs(session, estate, utility, pocket, to_pocket, payment.paid_at or utcnow())
                legs += unit_legs
            elif to_pocket > 0:
                legs.append((pocket.id, to_pocket))
            parts.append(f"unit {unit.number} {bought}" + (f" ({describe(recovery, estate.currency)})"
                                                            if recovery.total else ""))
            planned.append((estate, leg, unit, pocket, recovery))
        posted = post(session, Entry(
            estate_id=estate.id, kind="topup", idempotency_key=key, legs=legs if replayed is None else replayed,
            occurred_at=payment.paid_at, created_by_user_id=user_id,
            memo=f"{provider} group top-up {format_amount(amount, estate.currency)}: {utility.replace('_', ' ')} "
                 f"{'; '.join(parts)} ({payment.provider_ref})"))
        for _, leg, *_rest in planned:
            leg.transaction_id = posted.transaction_id
        first_transaction = first_transaction or posted.transaction_id
        if posted.created:
            created_any = True
            done += planned
    was = payment.status
    payment.utility, payment.currency = utility, distribution.currency
    payment.status, payment.status_reason = "credited", None
    payment.transaction_id = payment.transaction_id or first_transaction
    payment.credited_at = payment.credited_at or utcnow()
    if not created_any:
        return False
    audit.record(session, "payment.credited", payment, estate_id=payment.estate_id, old={"status": was},
                 new={"status": "credited", "utility": utility, "amount": str(total), "key": payment.idempotency_key,
                      "legs": {f"{leg.estate_id}/{unit.number}": str(leg.amount) for _, leg, unit, _, _ in done}})
    for estate, leg, unit, pocket, recovery in done:
        close_cleared(session, recovery, occurred_at=payment.paid_at)
    _after_pocket_change(session, [pocket.id for _, _, _, pocket, _ in done])
    for estate, leg, unit, pocket, recovery in done:
        after_payment(session, unit)
        # The receipt and webhook of each wallet name its own leg (a transient row, never saved).
        share = Payment(id=payment.id, provider=payment.provider, provider_ref=payment.provider_ref,
                        amount=leg.amount, currency=estate.currency, utility=utility, unit_id=unit.id,
                        estate_id=estate.id, transaction_id=leg.transaction_id, status="credited")
        _send_receipt(session, share, unit, estate, pocket.id)
        _emit_topup_webhook(session, share, unit, estate, pocket.id)
    return True
