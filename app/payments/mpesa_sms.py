"""M-PESA by SMS (P2): parse relayed confirmations, match them to a unit, credit or queue.

The SMS gateway speaks the Medic Mobile (cht-gateway) protocol; `handle_gateway_post()`
takes its JSON body and returns the JSON to answer: the outgoing SMS (receipts) waiting
in the notification outbox. Messages and status updates may arrive more than once.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.models import Estate, Meter, Notification, Person, Tenancy, Unit, canonical_serial, utcnow
from app.models.payments import Payment, SmsMessage
from app.money import MoneyError, to_decimal
from app.payments.credit import PaymentError, credit_payment

log = logging.getLogger(__name__)
CURRENCY_OF_PREFIX = {"M": "LSL", "KSH": "KES", "KES": "KES", "TSH": "TZS", "R": "ZAR"}
SUSPICIOUS_UNITS_PER_PHONE = 3  # more distinct units than this in 30 days is flagged (P6)
MAX_OFFERS = 3  # times an outgoing SMS is offered to the gateway before it must acknowledge

# The documented Lesotho (Vodacom M-Pesa) confirmation.
_DOCUMENTED = re.compile(
    r"^(?P<txn>[A-Z0-9]{8,12})\s+Confirmed\.?\s*"
    r"(?:on\s+\S+\s+at\s+\d{1,2}:\d{2}\s*(?:[AP]M)?\s*)?"
    r"(?P<cur>[A-Za-z]{1,3})\s?(?P<amount>\d[\d,]*(?:\.\d{1,2})?)\s+received\s+from\s+"
    r"(?P<phone>\+?\d{7,15})\s*-\s*(?P<name>[^.\d]*?)\s*(?:\+?\d{7,15})?\s*\.\s*"
    r"New\s+M-?Pesa\s+balance\s+is\s+\S+?\.?\s*Reference:?\s*(?P<ref>[\w/-]+)",
    re.IGNORECASE,
)
_TXN = re.compile(r"\b(?P<txn>[A-Z0-9]{8,12})\s+Confirmed\b", re.IGNORECASE)
_AMOUNT = re.compile(r"(?<![\w.])(?P<cur>Ksh|KES|Tsh|M|R)\s?(?P<amount>\d[\d,]*(?:\.\d{1,2})?)", re.IGNORECASE)
_PHONE = re.compile(r"(?<!\d)(?P<phone>\+?\d{8,15})(?!\d)")
_REFERENCE = re.compile(
    r"\b(?:Reference|Ref\.?|Account(?:\s+(?:Number|No\.?))?|Acc(?:ount)?\.?\s*No\.?)\s*[:#]?\s*"
    r"(?P<ref>[A-Za-z0-9/-]+)", re.IGNORECASE)
_NAME_AFTER_PHONE = re.compile(r"\+?\d{8,15}\s*-\s*(?P<name>[A-Za-z][A-Za-z .'-]*?)\s*(?:\+?\d{8,15})?\s*\.")
_NAME_BEFORE_PHONE = re.compile(r"from\s+(?P<name>[A-Za-z][A-Za-z .'-]*?)\s+\+?\d{8,15}", re.IGNORECASE)


@dataclass(frozen=True)
class MpesaConfirmation:
    txn_id: str
    amount: Decimal
    currency: str | None
    phone: str | None
    sender: str | None
    reference: str | None


class NotAPayment(ValueError):
    """The SMS is not an incoming M-PESA confirmation; the reason says why."""


def parse_confirmation(text: str) -> MpesaConfirmation:
    """Read an M-PESA 'received' confirmation; tolerate drift in wording and order."""
    text = " ".join((text or "").split())
    if not text:
        raise NotAPayment("empty message")
    if not re.search(r"\breceived\b", text, re.IGNORECASE) or re.search(r"\bsent to\b", text, re.IGNORECASE):
        raise NotAPayment("not an incoming payment confirmation")
    found = _DOCUMENTED.search(text)
    if found:
        return _confirmation(found["txn"], found["cur"], found["amount"], found["phone"],
                             found["name"], found["ref"])
    txn = _TXN.search(text)
    amount = _AMOUNT.search(text)
    if not txn:
        raise NotAPayment("no transaction id followed by 'Confirmed'")
    if not amount:
        raise NotAPayment("no amount")
    after_amount = text[amount.end():]
    phone = _PHONE.search(after_amount) or _PHONE.search(text[txn.end():])
    reference = _REFERENCE.search(text)
    name = _NAME_AFTER_PHONE.search(text) or _NAME_BEFORE_PHONE.search(text)
    if not phone and not reference:
        raise NotAPayment("neither a phone number nor a reference")
    return _confirmation(txn["txn"], amount["cur"], amount["amount"],
                         phone["phone"] if phone else None, name["name"] if name else None,
                         reference["ref"] if reference else None)


def _confirmation(txn: str, currency: str, amount: str, phone: str | None, name: str | None,
                  reference: str | None) -> MpesaConfirmation:
    try:
        value = to_decimal(amount)
    except MoneyError:
        raise NotAPayment(f"amount {amount!r} is not a number") from None
    if value <= 0:
        raise NotAPayment("amount is not positive")
    return MpesaConfirmation(
        txn_id=txn.upper(), amount=value, currency=CURRENCY_OF_PREFIX.get(currency.upper()),
        phone=normalise_phone(phone) if phone else None,
        sender=(name or "").strip(" .-") or None,
        reference=reference.strip(".").upper() if reference else None,
    )


def normalise_phone(raw: str) -> str:
    """Digits only ('+266 5775-5403' -> '26657755403')."""
    return re.sub(r"\D", "", raw or "")


# --- matching -----------------------------------------------------------------------------

def match_unit(session: Session, reference: str | None, phone: str | None) -> tuple[Unit | None, str]:
    """Find the unit a payment is for: by reference (unit number or meter serial), then phone."""
    if reference:
        unit = _unit_by_reference(session, reference)
        if unit is not None:
            return unit, f"reference {reference}"
    if phone:
        unit = _unit_by_phone(session, phone)
        if unit is not None:
            return unit, f"phone {phone}"
    return None, "no unit matches the reference or the phone"


def _unit_by_reference(session: Session, reference: str) -> Unit | None:
    ref = reference.strip().upper()
    meter = session.scalar(select(Meter).where(Meter.serial == canonical_serial(ref),
                                               Meter.unit_id.is_not(None)))
    if meter is not None:
        return meter.unit
    # "<ESTATE CODE>-<unit>" or "<ESTATE CODE>/<unit>" names one unit anywhere.
    for separator in ("-", "/"):
        code, _, number = ref.partition(separator)
        if number:
            unit = session.scalar(select(Unit).join(Estate).where(
                func.upper(Estate.code) == code, func.upper(Unit.number) == number))
            if unit is not None:
                return unit
    units = session.scalars(select(Unit).where(func.upper(Unit.number) == ref).limit(2)).all()
    return units[0] if len(units) == 1 else None  # a number two estates share is ambiguous


def _unit_by_phone(session: Session, phone: str) -> Unit | None:
    """The unit rented today by the one person with this phone (last 8 digits compared)."""
    from datetime import date
    today = date.today()
    tail = phone[-8:]
    rows = session.execute(
        select(Person.phone, Tenancy.unit_id).join(Tenancy, Tenancy.person_id == Person.id)
        .where(Person.phone.like(f"%{tail[-4:]}"), Tenancy.move_in <= today,
               (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today))).all()
    units = {unit_id for person_phone, unit_id in rows if normalise_phone(person_phone).endswith(tail)}
    return session.get(Unit, units.pop()) if len(units) == 1 else None


# --- the gateway protocol -----------------------------------------------------------------

def handle_gateway_post(session: Session, body: dict[str, Any]) -> dict[str, Any]:
    """Process relayed messages and status updates; return the outgoing SMS to send."""
    messages = body.get("messages") or []
    updates = body.get("updates") or []
    if not isinstance(messages, list) or not isinstance(updates, list):
        raise ValueError("messages and updates must be lists")
    for message in messages:
        if isinstance(message, dict):
            receive_message(session, message)
    for update in updates:
        if isinstance(update, dict):
            _apply_update(session, update)
    outgoing = _offer_outbox(session)
    session.commit()
    return {"messages": outgoing}


def receive_message(session: Session, message: dict[str, Any]) -> SmsMessage | None:
    """Record one relayed SMS once (by gateway id) and act on it; None for a re-delivery."""
    gateway_id = str(message.get("id") or "").strip()
    if not gateway_id:
        log.warning("SMS without an id ignored: %r", message)
        return None
    if session.scalar(select(SmsMessage.id).where(SmsMessage.gateway_id == gateway_id)):
        return None
    content = str(message.get("content") or "")
    row = SmsMessage(gateway_id=gateway_id[:100], from_number=str(message.get("from") or "")[:32],
                     content=content, sent_at=_from_epoch_ms(message.get("sms_sent")),
                     outcome="ignored")
    savepoint = session.begin_nested()
    try:
        session.add(row)
        session.flush()
        _act_on(session, row)
        savepoint.commit()
    except IntegrityError:  # the same message arrived twice at once: the other copy won
        savepoint.rollback()
        return None
    return row


def _act_on(session: Session, row: SmsMessage) -> None:
    try:
        parsed = parse_confirmation(row.content)
    except NotAPayment as reason:
        row.reason = str(reason)
        log.info("SMS %s from %s ignored: %s", row.gateway_id, row.from_number, reason)
        return
    existing = session.scalar(select(Payment).where(Payment.provider == "mpesa",
                                                    Payment.provider_ref == parsed.txn_id))
    if existing is not None:
        row.outcome, row.payment_id = "duplicate", existing.id
        row.reason = f"transaction {parsed.txn_id} was already received"
        if existing.amount != parsed.amount:  # P6: same provider id, different amount
            row.reason += f" with amount {existing.amount:.2f}, now {parsed.amount:.2f}: suspicious"
            log.warning("M-PESA %s seen twice with different amounts", parsed.txn_id)
        return
    unit, why = match_unit(session, parsed.reference, parsed.phone)
    payment = Payment(
        provider="mpesa", provider_ref=parsed.txn_id, reference=parsed.reference,
        amount=parsed.amount, currency=parsed.currency, payer_phone=parsed.phone,
        payer_name=parsed.sender, paid_at=row.sent_at or utcnow(), status="unmatched",
        status_reason=why, raw={"sms": row.content, "gateway_id": row.gateway_id},
        unit_id=unit.id if unit else None, estate_id=unit.estate_id if unit else None,
    )
    session.add(payment)
    session.flush()
    row.outcome, row.payment_id = "payment", payment.id
    if unit is None:
        audit.record(session, "payment.unmatched", payment, new={"txn": parsed.txn_id,
                     "amount": str(parsed.amount), "reference": parsed.reference})
        return
    try:
        credit_payment(session, payment)
    except PaymentError as error:
        payment.status, payment.status_reason = "unmatched", f"{why}, but {error}"
    else:
        row.reason = f"matched by {why}"
        _flag_one_phone_many_units(session, payment)


def _flag_one_phone_many_units(session: Session, payment: Payment) -> None:
    """P6: a phone paying into many unrelated units within 30 days is marked for staff."""
    from datetime import timedelta
    since = utcnow() - timedelta(days=30)
    units = session.scalars(select(func.count(func.distinct(Payment.unit_id))).where(
        Payment.provider == "mpesa", Payment.payer_phone == payment.payer_phone,
        Payment.unit_id.is_not(None), Payment.created_at >= since)).one()
    if payment.payer_phone and units > SUSPICIOUS_UNITS_PER_PHONE:
        payment.status_reason = f"suspicious: {payment.payer_phone} paid into {units} units in 30 days"
        log.warning("M-PESA %s: %s", payment.provider_ref, payment.status_reason)


def _apply_update(session: Session, update: dict[str, Any]) -> None:
    """A delivery status of an SMS we sent: SENT/DELIVERED close it, FAILED records why."""
    notification_id = _outgoing_notification_id(str(update.get("id") or ""))
    row = session.get(Notification, notification_id) if notification_id else None
    if row is None or row.channel != "sms":
        return
    status = str(update.get("status") or "").upper()
    if status in ("SENT", "DELIVERED") and row.status != "sent":
        row.status, row.sent_at, row.error = "sent", utcnow(), None
    elif status == "FAILED" and row.status == "pending":
        row.status, row.error = "failed", str(update.get("reason") or "gateway reported FAILED")[:500]
    elif status == "PENDING":
        row.attempts = max(row.attempts, MAX_OFFERS)  # the gateway has it: stop offering


def _offer_outbox(session: Session) -> list[dict[str, str]]:
    """Pending SMS notifications, offered to the gateway (it de-duplicates by our id)."""
    rows = session.scalars(select(Notification).where(
        Notification.channel == "sms", Notification.status == "pending",
        Notification.to_address.is_not(None), Notification.attempts < MAX_OFFERS,
    ).order_by(Notification.id).limit(100)).all()
    for row in rows:
        row.attempts += 1
    return [{"id": f"mw-{row.id}", "to": _dialable(row.to_address), "content": row.body} for row in rows]


def _outgoing_notification_id(message_id: str) -> int | None:
    if message_id.startswith("mw-") and message_id[3:].isdigit():
        return int(message_id[3:])
    return None


def _dialable(phone: str) -> str:
    digits = normalise_phone(phone)
    return f"+{digits}" if len(digits) > 9 else digits


def _from_epoch_ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- the staff queue ----------------------------------------------------------------------

def assign_payment(session: Session, payment: Payment, unit: Unit, utility: str,
                   user_id: int | None) -> bool:
    """Staff assign an unmatched payment to a unit's pocket; it is credited once."""
    locked = session.scalar(select(Payment).where(Payment.id == payment.id).with_for_update()
                            .execution_options(populate_existing=True))
    if locked.status == "credited":
        return False
    if locked.status not in ("unmatched", "to_confirm"):
        raise PaymentError(f"a {locked.status} payment cannot be assigned")
    audit.record(session, "payment.assigned", locked, estate_id=unit.estate_id,
                 old={"unit_id": locked.unit_id}, new={"unit_id": unit.id, "utility": utility})
    locked.unit_id, locked.estate_id, locked.utility = unit.id, unit.estate_id, utility
    created = credit_payment(session, locked, user_id=user_id)
    session.commit()
    return created
