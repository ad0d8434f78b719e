"""The one staff queue of payments nobody could match to a unit, whatever their source, and
the one way to assign them (issue 12, item 5).

Sources: M-PESA by SMS and EFT (`Payment` rows, status "unmatched"), Koios payments
(`KoiosPayment`) and ThunderCloud credit jumps (`ThunderCloudPayment`) without a unit.

Assigning a Payment credits the chosen pocket through `credit_payment()` (via
`mpesa_sms.assign_payment`, which locks the row, audits and credits once). Assigning a
Koios or ThunderCloud payment records its unit and credits nothing: that money was paid at
SparkMeter, which already credited its own meter; crediting our wallet too would sell the
energy twice and the credit push would forward it back to Koios (see koios_payments.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models import Unit, utcnow
from app.models.meter import UTILITIES
from app.models.payments import Payment
from app.models.sources import KoiosPayment, ThunderCloudPayment
from app.payments import PaymentError
from app.payments.credit import PROVIDER_LABELS

SOURCES = ("payment", "koios", "thundercloud")
QUEUE_LIMIT = 200


@dataclass(frozen=True)
class UnmatchedPayment:
    """One row of the queue, the same shape for every source."""

    source: str            # "payment", "koios" or "thundercloud": the form's `source`
    id: int
    label: str             # "M-PESA", "EFT", "Koios", "ThunderCloud"
    received_at: datetime
    reference: str         # what identifies it at the provider
    payer: str             # who paid or what they typed
    amount: Decimal
    currency: str | None
    reason: str | None
    credits: bool          # assigning credits a pocket (False: recorded only, paid at the vendor)


@dataclass(frozen=True)
class AssignOutcome:
    created: bool          # False: it had been assigned or credited already; nothing changed
    message: str


def unmatched_payments(session: Session, limit: int = QUEUE_LIMIT) -> list[UnmatchedPayment]:
    """Every payment waiting for a unit, newest first, across all sources."""
    rows: list[UnmatchedPayment] = []
    for p in session.scalars(select(Payment).where(Payment.status == "unmatched")
                             .order_by(Payment.id.desc()).limit(limit)):
        payer = " ".join(filter(None, (p.payer_name, p.payer_phone or p.payer_email, p.reference and
                                       gettext("ref %(reference)s", reference=p.reference))))
        rows.append(UnmatchedPayment("payment", p.id, PROVIDER_LABELS.get(p.provider, p.provider),
                                     p.paid_at or p.created_at, p.provider_ref or "—", payer, p.amount,
                                     p.currency, p.status_reason, True))
    for k in session.scalars(select(KoiosPayment).where(KoiosPayment.unit_id.is_(None),
                                                        KoiosPayment.origin == "vendor")
                             .order_by(KoiosPayment.paid_at.desc()).limit(limit)):
        rows.append(UnmatchedPayment("koios", k.id, "Koios", k.paid_at, k.koios_id,
                                     gettext("customer %(code)s", code=k.customer_code or gettext("missing")),
                                     k.amount, k.currency, gettext("no meter of ours has this customer code"),
                                     False))
    for t in session.scalars(select(ThunderCloudPayment).where(ThunderCloudPayment.unit_id.is_(None))
                             .order_by(ThunderCloudPayment.detected_at.desc()).limit(limit)):
        rows.append(UnmatchedPayment("thundercloud", t.id, "ThunderCloud", t.detected_at, t.heartbeat_id,
                                     gettext("meter %(serial)s, customer %(code)s", serial=t.meter_serial,
                                             code=t.customer_code) if t.customer_code
                                     else gettext("meter %(serial)s", serial=t.meter_serial),
                                     t.amount, None, gettext("no meter of ours has this serial"), False))
    rows.sort(key=lambda row: row.received_at, reverse=True)
    return rows[:limit]


def assign_unmatched(session: Session, source: str, row_id: int, unit: Unit, utility: str, *,
                     user_id: int | None) -> AssignOutcome:
    """Give one unmatched payment its unit (crediting it when it is ours to credit); commits."""
    if source not in SOURCES:
        raise PaymentError(gettext("unknown payment source %(source)s", source=repr(source)))
    if utility not in UTILITIES:
        raise PaymentError(gettext("unknown utility %(utility)s", utility=repr(utility)))
    if source == "payment":
        from app.payments.mpesa_sms import assign_payment

        payment = session.get(Payment, row_id)
        if payment is None:
            raise PaymentError(gettext("no such payment"))
        created = assign_payment(session, payment, unit, utility, user_id)
        name = payment.provider_ref
        return AssignOutcome(created, gettext("Payment %(name)s credited to unit %(unit)s.", name=name,
                                              unit=unit.number) if created
                             else gettext("Payment %(name)s was already credited; nothing changed.", name=name))
    model = KoiosPayment if source == "koios" else ThunderCloudPayment
    row = session.scalar(select(model).where(model.id == row_id).with_for_update()
                         .execution_options(populate_existing=True))
    if row is None:
        raise PaymentError(gettext("no such payment"))
    name = row.koios_id if source == "koios" else row.heartbeat_id
    if row.unit_id is not None:
        session.rollback()
        return AssignOutcome(False, gettext("Payment %(name)s already belongs to a unit; nothing changed.", name=name))
    audit.record(session, "payment.assigned", row, estate_id=unit.estate_id,
                 old={"unit_id": None},
                 new={"unit_id": unit.id, "unit": unit.number, "amount": str(row.amount),
                      "credited": False, "why": "paid at SparkMeter, which credited its meter"})
    row.unit_id = unit.id
    if source == "koios":
        row.estate_id, row.matched_at = unit.estate_id, utcnow()
    session.commit()
    return AssignOutcome(True, gettext("%(source)s payment %(name)s recorded against unit %(unit)s (paid at "
                                       "SparkMeter: nothing credited here).",
                                       source="Koios" if source == "koios" else "ThunderCloud", name=name,
                                       unit=unit.number))
