"""Staff corrections (issue 14 item 7): reverse a ledger transaction with a reason, or move a
payment credited to the wrong unit to the right one, with a second staff approval above the
estate's threshold.

Rules, each one an error class below:
- a reason is required (it is the reversal's memo and the audit trail's why);
- a reversal, or a transaction already reversed (or with a reversal awaiting approval), is
  never reversed again;
- above the estate setting `reversal_approval_threshold` (money in the estate's currency,
  default 1000) the request waits for a second, different staff member;
- a reassignment stays in the payment's estate and goes to another unit or pocket.

Carrying a correction out is one database transaction: `ledger.reverse()` of the original,
the payment marked reversed, for a reassignment a new payment (its own ledger key
`<provider>:<ref>/R<n>` and its own Koios external id) credited through `credit_payment()`
(receipt, credit-control and SparkMeter push as for any credit), `after_pocket_change()` for
the pockets the reversal moved, and the audit rows. On a SparkMeter unit the payment's Koios
push is reversed by a job once that commits (`vendor_credit.reverse_vendor_payment`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.estates.settings_catalog import setting_default
from app.i18n.stored import N_, fill, reader_amount
from app.ledger import LedgerError, reverse
from app.metering.credit_control import after_pocket_change
from app.models import Account, Estate, LedgerTransaction, Unit, utcnow
from app.models.corrections import Correction
from app.models.meter import UTILITIES
from app.models.payments import Payment
from app.money import quantize
from app.payments import PaymentError
from app.settings import get_setting

THRESHOLD_SETTING = "reversal_approval_threshold"
DEFAULT_THRESHOLD = Decimal(setting_default(THRESHOLD_SETTING))
REASON_MAX = 300


class CorrectionError(PaymentError):
    """A correction was refused; nothing was written."""


class ReasonRequired(CorrectionError):
    """No reason, or one too long."""


class NotReversible(CorrectionError):
    """The transaction is a reversal itself, already reversed, or already awaiting approval."""


class SelfApproval(CorrectionError):
    """The requester tried to approve their own request."""


class NotPending(CorrectionError):
    """The request was already approved or declined."""


class BadTarget(CorrectionError):
    """A reassignment names no unit, another estate's unit, or the pocket already credited."""


@dataclass(frozen=True)
class CorrectionOutcome:
    correction: Correction
    message: str

    @property
    def pending(self) -> bool:
        return self.correction.status == "pending"


def approval_threshold(session: Session, estate_id: int) -> Decimal:
    """The size above which a reversal needs a second staff member (estate currency)."""
    raw = get_setting(session, THRESHOLD_SETTING, estate_id, default=None)
    try:
        value = Decimal(str(raw)) if raw is not None else DEFAULT_THRESHOLD
    except InvalidOperation:
        return DEFAULT_THRESHOLD
    return value if value.is_finite() and value >= 0 else DEFAULT_THRESHOLD


def transaction_size(transaction: LedgerTransaction, estate: Estate) -> Decimal:
    """How much money a transaction moves: its positive legs in the estate's currency.

    A units-mode consumption entry moves only kWh/kL: its size is 0 and it never waits."""
    return sum((p.amount for p in transaction.postings
                if p.amount > 0 and p.commodity == estate.currency), Decimal("0"))


def reversal_of(session: Session, transaction_id: int) -> LedgerTransaction | None:
    """The transaction that reversed this one, if any."""
    return session.scalar(select(LedgerTransaction).where(LedgerTransaction.reverses_id == transaction_id))


def payment_of(session: Session, transaction_id: int) -> Payment | None:
    """The payment whose credit this transaction is, if any (also one estate's share of a group top-up)."""
    from app.models.families import WalletDistribution, WalletDistributionLeg

    return session.scalar(select(Payment).where(Payment.transaction_id == transaction_id)) or session.scalar(
        select(Payment).join(WalletDistribution, WalletDistribution.payment_id == Payment.id)
        .join(WalletDistributionLeg, WalletDistributionLeg.distribution_id == WalletDistribution.id)
        .where(WalletDistributionLeg.transaction_id == transaction_id).limit(1))


def _share_transactions(session: Session, payment: Payment) -> set[int]:
    """The ledger transactions of a group top-up (one per estate); empty for any other payment."""
    from app.models.families import WalletDistribution, WalletDistributionLeg

    return set(session.scalars(
        select(WalletDistributionLeg.transaction_id)
        .join(WalletDistribution, WalletDistribution.id == WalletDistributionLeg.distribution_id)
        .where(WalletDistribution.payment_id == payment.id, WalletDistributionLeg.transaction_id.is_not(None))))


def why_not_reversible(session: Session, transaction: LedgerTransaction) -> str | None:
    """The reason this transaction cannot be reversed now, or None when it can."""
    if transaction.reverses_id is not None:
        return gettext("Transaction #%(id)s is itself the reversal of #%(original)s: a reversal is never "
                       "reversed. Post the original again if it was right.",
                       id=transaction.id, original=transaction.reverses_id)
    done = reversal_of(session, transaction.id)
    if done is not None:
        return gettext("Transaction #%(id)s was already reversed by #%(reversal)s.", id=transaction.id, reversal=done.id)
    waiting = session.scalar(select(Correction.id).where(
        Correction.transaction_id == transaction.id, Correction.status == "pending"))
    if waiting is not None:
        return gettext("A reversal of transaction #%(id)s is already waiting for approval (request #%(request)s).",
                       id=transaction.id, request=waiting)
    return None


def request_reversal(session: Session, transaction_id: int, reason: str, *, user_id: int,
                     target_unit_id: int | None = None, target_utility: str | None = None,
                     now: datetime | None = None) -> CorrectionOutcome:
    """Reverse a transaction (or reassign its payment) now, or above the threshold ask for
    a second approval; commits once."""
    outcome = record_correction(session, transaction_id, reason, user_id=user_id, target_unit_id=target_unit_id,
                                target_utility=target_utility, now=now)
    session.commit()
    return outcome


def record_correction(session: Session, transaction_id: int, reason: str, *, user_id: int,
                      target_unit_id: int | None = None, target_utility: str | None = None,
                      now: datetime | None = None) -> CorrectionOutcome:
    """`request_reversal()` without the commit: the caller commits (the demo seed)."""
    now = now or utcnow()
    reason = _clean_reason(reason)
    transaction = session.get(LedgerTransaction, transaction_id)
    if transaction is None:
        raise NotReversible(gettext("Transaction #%(id)s does not exist.", id=transaction_id))
    problem = why_not_reversible(session, transaction)
    if problem:
        raise NotReversible(problem)
    estate = session.get(Estate, transaction.estate_id)
    payment = payment_of(session, transaction.id)
    kind = "reverse"
    if target_unit_id is not None:
        kind = "reassign"
        target_utility = _check_target(session, payment, estate, target_unit_id, target_utility)
    correction = Correction(
        estate_id=estate.id, kind=kind, transaction_id=transaction.id,
        payment_id=payment.id if payment else None, target_unit_id=target_unit_id,
        target_utility=target_utility if kind == "reassign" else None, reason=reason,
        amount=quantize(transaction_size(transaction, estate), estate.currency),
        status="pending", requested_by_user_id=user_id, requested_at=now)
    session.add(correction)
    session.flush()
    threshold = approval_threshold(session, estate.id)
    if correction.amount > threshold:
        audit.record(session, "correction.requested", correction, estate_id=estate.id, new=_described(correction))
        message = gettext("%(amount)s is above the %(threshold)s approval threshold: another staff member "
                          "must approve this reversal before it is posted.",
                          amount=reader_amount(correction.amount, estate.currency),
                          threshold=reader_amount(threshold, estate.currency))
    else:
        message = _carry_out(session, correction, user_id=user_id, now=now)
    return CorrectionOutcome(correction, message)


def approve_correction(session: Session, correction_id: int, *, user_id: int,
                       now: datetime | None = None) -> CorrectionOutcome:
    """A second staff member approves a waiting reversal, which is then posted; commits once."""
    now = now or utcnow()
    correction = _pending(session, correction_id)
    if correction.requested_by_user_id == user_id:
        raise SelfApproval(gettext("You asked for this reversal: a different staff member must approve it."))
    transaction = session.get(LedgerTransaction, correction.transaction_id)
    done = reversal_of(session, transaction.id)
    if done is not None:
        raise NotReversible(gettext("Transaction #%(id)s was already reversed by #%(reversal)s.",
                                    id=transaction.id, reversal=done.id))
    if correction.kind == "reassign":
        _check_target(session, session.get(Payment, correction.payment_id), correction.estate,
                      correction.target_unit_id, correction.target_utility)
    message = _carry_out(session, correction, user_id=user_id, now=now)
    session.commit()
    return CorrectionOutcome(correction, message)


def decline_correction(session: Session, correction_id: int, *, user_id: int, note: str = "",
                       now: datetime | None = None) -> CorrectionOutcome:
    """Decline a waiting reversal (the requester may withdraw their own); commits once."""
    correction = _pending(session, correction_id)
    note = (note or "").strip()
    if len(note) > REASON_MAX:
        raise ReasonRequired(gettext("Keep the note under %(max)s characters.", max=REASON_MAX), field="note")
    correction.status, correction.decided_by_user_id = "declined", user_id
    correction.decided_at, correction.decision_note = now or utcnow(), note or None
    audit.record(session, "correction.declined", correction, estate_id=correction.estate_id,
                 old={"status": "pending"}, new={"status": "declined", "note": note})
    session.commit()
    return CorrectionOutcome(correction, gettext("Reversal request #%(id)s declined; nothing was posted.",
                                                 id=correction.id))


# --- building blocks (the caller commits) ----------------------------------------------


def _clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").replace("\x00", " ").split())
    if not text:
        raise ReasonRequired(gettext("Say why this transaction is reversed."), field="reason")
    if len(text) > REASON_MAX:
        raise ReasonRequired(gettext("Keep the reason under %(max)s characters.", max=REASON_MAX), field="reason")
    return text


def _check_target(session: Session, payment: Payment | None, estate: Estate, unit_id: int | None,
                  utility: str | None) -> str:
    if payment is None or payment.status != "credited":
        raise BadTarget(gettext("Only a credited payment can be reassigned to another unit."), field="unit_id")
    if _share_transactions(session, payment):
        raise BadTarget(gettext("This is a group top-up shared over several wallets: reverse the wrong share "
                                "instead (each estate's share is its own transaction) and top up the right unit."),
                        field="unit_id")
    unit = session.get(Unit, unit_id) if unit_id else None
    if unit is None or unit.estate_id != estate.id:
        raise BadTarget(gettext("Choose a unit of %(estate)s: a payment stays in its estate.", estate=estate.name),
                        field="unit_id")
    utility = utility or payment.utility
    if utility not in UTILITIES:
        raise BadTarget(gettext("Choose the pocket to credit."), field="utility")
    if unit.id == payment.unit_id and utility == payment.utility:
        raise BadTarget(gettext("The payment is already in unit %(unit)s's %(pocket)s pocket.", unit=unit.number,
                                pocket=_pocket(utility)), field="unit_id")
    return utility


def _pending(session: Session, correction_id: int) -> Correction:
    correction = session.scalar(select(Correction).where(Correction.id == correction_id)
                                .with_for_update().execution_options(populate_existing=True))
    if correction is None:
        raise NotPending(gettext("Reversal request #%(id)s does not exist.", id=correction_id))
    if correction.status != "pending":
        raise NotPending(gettext("Reversal request #%(id)s was already %(status)s.", id=correction.id,
                                 status=gettext(correction.status)))
    return correction


def _carry_out(session: Session, correction: Correction, *, user_id: int, now: datetime) -> str:
    """Post the reversal (and the new credit of a reassignment); the caller commits."""
    from app.payments.credit import credit_payment
    from app.payments.vendor_credit import queue_vendor_reversal

    original = session.get(LedgerTransaction, correction.transaction_id)
    try:
        posted = reverse(session, original.id, occurred_at=now, created_by_user_id=user_id,
                         memo=f"Reversal of #{original.id}: {correction.reason}"[:500])
    except LedgerError as error:
        raise NotReversible(gettext("The ledger refused the reversal: %(error)s", error=error)) from None
    if not posted.created:  # another staff member's reversal committed first: nothing more to do
        raise NotReversible(gettext("Transaction #%(id)s was already reversed by #%(reversal)s.",
                                    id=original.id, reversal=posted.transaction_id))
    was = correction.status
    correction.status, correction.reversal_transaction_id = "done", posted.transaction_id
    if correction.requested_by_user_id != user_id:
        correction.decided_by_user_id, correction.decided_at = user_id, now
    moved = [p.account_id for p in original.postings]
    pockets = list(session.scalars(select(Account.id).where(Account.id.in_(moved), Account.kind == "pocket")))
    message = gettext("Transaction #%(id)s reversed by #%(reversal)s.", id=original.id, reversal=posted.transaction_id)
    payment = session.get(Payment, correction.payment_id) if correction.payment_id else None
    shares = _share_transactions(session, payment) if payment is not None else set()
    standing = {t for t in shares if t != original.id and reversal_of(session, t) is None}
    if payment is not None and standing:
        # One estate's share of a group top-up: the payment stays credited until every share is reversed.
        payment.status_reason = fill(N_("Share #%(id)s reversed: %(reason)s"), id=original.id,
                                      reason=correction.reason)[:300]
        audit.record(session, "payment.share_reversed", payment, estate_id=original.estate_id,
                     new={"transaction": original.id, "reason": correction.reason,
                          "reversal": posted.transaction_id, "shares_standing": sorted(standing)})
    elif payment is not None:
        old_status = payment.status
        payment.status, payment.status_reason = "reversed", correction.reason[:300]
        audit.record(session, "payment.reversed", payment, estate_id=payment.estate_id,
                     old={"status": old_status}, new={"status": "reversed", "reason": correction.reason,
                                                      "reversal": posted.transaction_id})
    if correction.kind == "reassign":
        new = _reassigned_payment(session, payment, correction)
        try:
            credit_payment(session, new, user_id=user_id)
        except (LedgerError, PaymentError) as error:
            raise BadTarget(gettext("The new credit was refused: %(error)s", error=error), field="unit_id") from None
        correction.new_payment_id = new.id
        unit = session.get(Unit, new.unit_id)
        payment.status_reason = fill(N_("Reassigned to unit %(unit)s: %(reason)s"), unit=unit.number,
                                      reason=correction.reason)[:300]
        message = gettext("Payment %(ref)s moved to unit %(unit)s (%(pocket)s): #%(id)s reversed by #%(reversal)s, "
                          "credited again by #%(credit)s.", ref=payment.provider_ref, unit=unit.number,
                          pocket=_pocket(new.utility), id=original.id, reversal=posted.transaction_id,
                          credit=new.transaction_id)
    after_pocket_change(session, pockets)
    if payment is not None:
        queue_vendor_reversal(session, correction, payment)
    audit.record(session, f"correction.{correction.kind}", correction, estate_id=correction.estate_id,
                 old={"status": was}, new={**_described(correction), "status": "done"})
    return message


# Words put into the sentences above, marked for the catalogues.
_WORDS = (N_("electricity"), N_("water"), N_("hot water"), N_("done"), N_("declined"), N_("pending"))


def _pocket(utility: str) -> str:
    """A pocket's name in a sentence ("hot water"), in the reader's language."""
    return gettext(utility.replace("_", " "))


def _reassigned_payment(session: Session, payment: Payment, correction: Correction) -> Payment:
    """The same money as a new payment on the right unit, with its own ledger key."""
    count = session.scalar(select(func.count()).select_from(Payment)
                           .where(Payment.reassigned_from_id.is_not(None),
                                  Payment.provider == payment.provider,
                                  Payment.provider_ref.like(f"{payment.provider_ref.split('/R')[0]}/R%")))
    base = payment.provider_ref.split("/R")[0]
    new = Payment(provider=payment.provider, provider_ref=f"{base[:56]}/R{count + 1}",
                  reference=payment.reference, estate_id=payment.estate_id, unit_id=correction.target_unit_id,
                  utility=correction.target_utility, amount=payment.amount, currency=payment.currency,
                  status="to_confirm", payer_name=payment.payer_name, payer_phone=payment.payer_phone,
                  payer_email=payment.payer_email, paid_at=payment.paid_at,
                  created_by_user_id=correction.decided_by_user_id or correction.requested_by_user_id,
                  reassigned_from_id=payment.id,
                  raw={"reassigned_from": payment.id, "correction": correction.id})
    session.add(new)
    session.flush()
    return new


def _described(correction: Correction) -> dict:
    return {"kind": correction.kind, "transaction": correction.transaction_id, "reason": correction.reason,
            "amount": str(correction.amount), "target_unit_id": correction.target_unit_id,
            "target_utility": correction.target_utility, "reversal": correction.reversal_transaction_id,
            "new_payment": correction.new_payment_id}
