"""M-PESA by SMS (P2): parse relayed confirmations, match them to a unit, credit or queue.

The SMS gateway speaks the Medic Mobile (cht-gateway) protocol; `handle_gateway_post()`
takes its JSON body and returns the JSON to answer: the outgoing SMS (receipts) waiting
in the notification outbox. Messages and status updates may arrive more than once.

Trust: the gateway relays every SMS its phone receives, so only a confirmation sent by a
configured M-PESA sender id (`MPESA_SENDERS`, narrowed per estate by the `mpesa_senders`
setting) may credit; anyone else's look-alike is stored as suspicious and audited.

Robustness: every message is read into bounded fields before the database sees it and is
handled in its own savepoint, so one bad message is recorded as refused with its reason
and never stops the rest of the gateway's poll.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app import audit, phones
from app.estates.settings_catalog import setting_default
from app.estates.account_numbers import unit_by_account_number
from app.i18n.stored import N_, fill
from app.settings import get_setting
from app.models import Estate, Meter, Notification, Person, Tenancy, Unit, canonical_serial, utcnow
from app.models.payments import Payment, SmsMessage
from app.money import MoneyError, to_decimal
from app.payments import PaymentError
from app.payments.credit import credit_payment

log = logging.getLogger(__name__)
CURRENCY_OF_PREFIX = {"M": "LSL", "KSH": "KES", "KES": "KES", "TSH": "TZS", "R": "ZAR"}
SUSPICIOUS_UNITS_PER_PHONE = 3  # more distinct units than this in 30 days is flagged (P6)
MAX_OFFERS = 3  # times an outgoing SMS is offered to the gateway before it must acknowledge
DEFAULT_SENDERS = "MPESA,M-PESA"  # the sender ids M-PESA confirmations come from
SENDERS_SETTING = "mpesa_senders"  # an estate's own (narrower) list of sender ids
MAX_SMS_CHARS = 2000  # ten concatenated SMS; a real confirmation is under 300 characters
MAX_ROW_ID = 2**31 - 1  # notifications.id is a 32-bit integer
# Bounds come from the columns, so they follow the schema.
_REFERENCE_MAX = Payment.__table__.c.reference.type.length
_PAYER_NAME_MAX = Payment.__table__.c.payer_name.type.length
_AMOUNT_TYPE = Payment.__table__.c.amount.type
MAX_AMOUNT = Decimal(10) ** (_AMOUNT_TYPE.precision - _AMOUNT_TYPE.scale)  # exclusive

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
_SPACED_REFERENCE = re.compile(
    r"\bReference:?\s*(?P<ref>[A-Za-z0-9/-]+(?:[ ][A-Za-z0-9/-]+){1,3})\s*\.?\s*$", re.IGNORECASE)
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
    # The reference as written when it ends the message in several words ("Reference: 0045 MAK."):
    # tried, spaces removed, as an account number before `reference` (its first word) is.
    spaced_reference: str | None = None


class NotAPayment(PaymentError, ValueError):
    """The SMS is not an incoming M-PESA confirmation; the reason says why."""


def parse_confirmation(text: str) -> MpesaConfirmation:
    """Read an M-PESA 'received' confirmation; tolerate drift in wording and order."""
    text = " ".join((text or "").split())
    if not text:
        raise NotAPayment(N_("empty message"))
    if not re.search(r"\breceived\b", text, re.IGNORECASE) or re.search(r"\bsent to\b", text, re.IGNORECASE):
        raise NotAPayment(N_("not an incoming payment confirmation"))
    found = _DOCUMENTED.search(text)
    if found:
        return _with_spaced_reference(text, _confirmation(found["txn"], found["cur"], found["amount"],
                                                          found["phone"], found["name"], found["ref"]))
    txn = _TXN.search(text)
    amount = _AMOUNT.search(text)
    if not txn:
        raise NotAPayment(N_("no transaction id followed by 'Confirmed'"))
    if not amount:
        raise NotAPayment(N_("no amount"))
    after_amount = text[amount.end():]
    phone = _PHONE.search(after_amount) or _PHONE.search(text[txn.end():])
    reference = _REFERENCE.search(text)
    name = _NAME_AFTER_PHONE.search(text) or _NAME_BEFORE_PHONE.search(text)
    if not phone and not reference:
        raise NotAPayment(N_("neither a phone number nor a reference"))
    return _with_spaced_reference(text, _confirmation(
        txn["txn"], amount["cur"], amount["amount"], phone["phone"] if phone else None,
        name["name"] if name else None, reference["ref"] if reference else None))


def _with_spaced_reference(text: str, parsed: MpesaConfirmation) -> MpesaConfirmation:
    """Keep a reference of several words that ends the message (an account number typed with spaces)."""
    found = _SPACED_REFERENCE.search(text)
    return replace(parsed, spaced_reference=found["ref"].upper()) if found else parsed


def _confirmation(txn: str, currency: str, amount: str, phone: str | None, name: str | None,
                  reference: str | None) -> MpesaConfirmation:
    try:
        value = to_decimal(amount)
    except MoneyError:
        raise NotAPayment(fill(N_("amount %(amount)s is not a number"), amount=repr(amount))) from None
    if value <= 0:
        raise NotAPayment(N_("amount is not positive"))
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

def match_unit(session: Session, reference: str | None, phone: str | None, *,
               currency: str | None = None) -> tuple[Unit | None, str]:
    """Find the unit a payment is for: by reference (account number, meter serial or unit number), then phone."""
    if reference:
        unit = _unit_by_reference(session, reference)
        if unit is not None:
            return unit, fill(N_("reference %(reference)s"), reference=reference)
    if phone:
        unit = _unit_by_phone(session, phone, currency)
        if unit is not None:
            return unit, fill(N_("phone %(phone)s"), phone=phone)
    return None, N_("no unit matches the reference or the phone")


def _unit_by_reference(session: Session, reference: str) -> Unit | None:
    # An account number is unique across estates and made to be quoted (capitals or not, spaces ignored).
    unit = unit_by_account_number(session, reference)
    if unit is not None:
        return unit
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


def _unit_by_phone(session: Session, phone: str, currency: str | None = None) -> Unit | None:
    """The unit rented today by the one person with this phone, whole E.164 numbers compared.

    Each tenant's phone is read in its estate's country. A payer's number written without
    its country is read in each candidate estate's country, but only in estates of the
    payment's currency: the same local digits are another person in another country.
    """
    from datetime import date
    digits = normalise_phone(phone)
    if len(digits) < 7:
        return None
    payer = phones.try_e164(phone, None)  # international form: the same in every estate
    today = date.today()
    # Coarse filter in SQL: any way of writing the number has its last digits in order.
    pattern = "%" + "%".join(digits[-8:]) + "%"
    query = (select(Person.phone, Tenancy.unit_id, Estate.country)
             .join(Tenancy, Tenancy.person_id == Person.id).join(Unit, Unit.id == Tenancy.unit_id)
             .join(Estate, Estate.id == Unit.estate_id)
             .where(Person.phone.like(pattern), Tenancy.move_in <= today,
                    (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today)))
    if payer is None and currency:
        query = query.where(Estate.currency == currency)
    units = set()
    for person_phone, unit_id, country in session.execute(query):
        wanted = payer or phones.try_e164(phone, country)
        if wanted is not None and phones.try_e164(person_phone, country) == wanted:
            units.add(unit_id)
    return session.get(Unit, units.pop()) if len(units) == 1 else None


def payer_e164(phone: str | None, unit: Unit | None) -> str | None:
    """The payer's number in E.164 (read in the unit's country), else as the SMS wrote it."""
    if not phone:
        return None
    return phones.try_e164(phone, unit.estate.country if unit is not None else None) or phone


# --- trusted senders ----------------------------------------------------------------------

def sender_ids(value: str | Iterable[str] | None) -> frozenset[str]:
    """Read a sender id list ('MPESA, M-PESA' or a list) into upper-case ids."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(str(item).strip().upper() for item in items if str(item).strip())


def estate_sender_ids(session: Session, estate_id: int, trusted: frozenset[str]) -> frozenset[str]:
    """The sender ids that may credit in one estate: its setting can only narrow `trusted`."""
    own = get_setting(session, SENDERS_SETTING, estate_id, default=setting_default(SENDERS_SETTING))
    return trusted & sender_ids(own) if own else trusted


# --- reading one relayed message ----------------------------------------------------------

@dataclass(frozen=True)
class RelayedSms:
    """One gateway message with every field bounded; `problem` is why it is refused."""

    key: str  # the gateway id, or a digest when it has none or an over-long one
    sender: str  # exactly as relayed (stripped), for the trust check; stored cleaned and cut
    content: str
    sent_at: datetime | None
    problem: str | None


def read_message(message: Any) -> RelayedSms:
    """Bound one relayed message's fields before the database sees them."""
    if not isinstance(message, dict):
        dump = _dump(message)
        return RelayedSms(_digest(dump), "", _clean(dump)[:MAX_SMS_CHARS], None,
                          N_("the message is not a JSON object"))
    problem = None
    raw_id, sender, content = (_text(message.get(name)) for name in ("id", "from", "content"))
    if message.get("content") is not None and content is None:
        problem, content = N_("the content is not text"), _dump(message.get("content"))
    content = _clean(content or "")
    if len(content) > MAX_SMS_CHARS:
        problem, content = problem or fill(N_("the content is longer than %(max)s characters"), max=MAX_SMS_CHARS), \
            content[:MAX_SMS_CHARS]
    if message.get("from") is not None and sender is None:
        problem = problem or N_("the sender is not text")
    gateway_id = _clean(raw_id or "").strip()
    if not gateway_id:
        problem = (N_("the message id is not text") if raw_id is None and message.get("id") is not None
                   else N_("the message has no id"))
        key = _digest(_dump(message))
    elif len(gateway_id) > SmsMessage.__table__.c.gateway_id.type.length:
        key = _digest(gateway_id)  # still identifies the message, so re-deliveries match
    else:
        key = gateway_id
    return RelayedSms(key, (sender or "").strip(), content,
                      _from_epoch_ms(message.get("sms_sent")), problem)


def _text(value: Any) -> str | None:
    """A JSON string or integer as text; anything else (lists, objects, booleans) is None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if -10**30 < value < 10**30 else None
    return None


def _clean(text: str) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return "<unreadable>"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(_clean(text).encode()).hexdigest()


def _fit(text: str | None, column) -> str | None:
    """Cut a message to the column it is stored in."""
    length = column.type.length
    return text if text is None or len(text) <= length else text[:length - 1] + "…"


# --- the gateway protocol -----------------------------------------------------------------

def handle_gateway_post(session: Session, body: dict[str, Any], *,
                        senders: str | Iterable[str] = DEFAULT_SENDERS) -> dict[str, Any]:
    """Process relayed messages and status updates one by one; commit; return the SMS to send."""
    messages = body.get("messages") or []
    updates = body.get("updates") or []
    if not isinstance(messages, list) or not isinstance(updates, list):
        raise ValueError("messages and updates must be lists")
    trusted = sender_ids(senders)
    for message in messages:
        receive_message(session, message, trusted=trusted)
    for update in updates:
        if isinstance(update, dict):
            _contained(session, "update", lambda update=update: _apply_update(session, update))
    outgoing = _offer_outbox(session)
    session.commit()
    return {"messages": outgoing}


def receive_message(session: Session, message: Any, *,
                    trusted: frozenset[str] = sender_ids(DEFAULT_SENDERS)) -> SmsMessage | None:
    """Record one relayed SMS once (by gateway id) and act on it; None for a re-delivery.

    Runs in its own savepoint: a message that fails is rolled back alone and stored as
    refused with the reason. The caller commits.
    """
    sms = read_message(message)
    if session.scalar(select(SmsMessage.id).where(SmsMessage.gateway_id == sms.key)):
        return None
    savepoint = session.begin_nested()
    try:
        row = SmsMessage(gateway_id=sms.key, from_number=_fit(_clean(sms.sender), SmsMessage.from_number),
                         content=sms.content, sent_at=sms.sent_at, outcome="ignored")
        session.add(row)
        session.flush()
        if sms.problem:
            row.outcome, row.reason = "refused", sms.problem
            log.warning("SMS %s refused: %s", sms.key, sms.problem)
        else:
            _act_on(session, row, sms.sender, trusted)
        row.reason = _fit(row.reason, SmsMessage.reason)
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        if session.scalar(select(SmsMessage.id).where(SmsMessage.gateway_id == sms.key)):
            return None  # the same message arrived twice at once: the other copy won
        return _refuse(session, sms, "conflicts with a payment stored at the same moment")
    except (OperationalError, InterfaceError):
        raise  # the database, not the message, failed: the gateway retries the poll
    except Exception as error:  # one poison message must never block the others
        savepoint.rollback()
        log.exception("SMS %s could not be processed", sms.key)
        return _refuse(session, sms, f"could not be processed ({type(error).__name__})")
    savepoint.commit()
    return row


def _refuse(session: Session, sms: RelayedSms, reason: str) -> SmsMessage | None:
    """Store a message that failed as refused, so the gateway's retry is not processed again."""
    row = SmsMessage(gateway_id=sms.key, from_number=_fit(_clean(sms.sender), SmsMessage.from_number),
                     content=sms.content, sent_at=sms.sent_at, outcome="refused",
                     reason=_fit(reason, SmsMessage.reason))
    stored = _contained(session, "refusal", lambda: (session.add(row), session.flush()))
    return row if stored else None


def _contained(session: Session, what: str, work) -> bool:
    """Run `work` in a savepoint; on failure roll back just it, log, and return False."""
    savepoint = session.begin_nested()
    try:
        work()
        session.flush()
    except (OperationalError, InterfaceError):
        raise
    except Exception:  # a bad update or refusal row must not fail the gateway's whole poll
        savepoint.rollback()
        log.exception("SMS gateway %s could not be stored", what)
        return False
    savepoint.commit()
    return True


def _act_on(session: Session, row: SmsMessage, sender: str, trusted: frozenset[str]) -> None:
    try:
        parsed = parse_confirmation(row.content)
    except NotAPayment as reason:
        row.reason = str(reason)
        log.info("SMS %s from %s ignored: %s", row.gateway_id, row.from_number, reason)
        from app.notify.sms_commands import answer_text_command  # two-way SMS (T5, issue 23)
        answer_text_command(session, row, sender, trusted)
        return
    if sender.upper() not in trusted:
        _flag_spoofed(session, row, parsed, fill(N_("sent by %(sender)s, not by an M-PESA sender id (%(ids)s)"),
                                                 sender=_clean(sender) or N_("no sender"),
                                                 ids=", ".join(sorted(trusted)) or N_("none configured")), None)
        return
    problem = _out_of_bounds(parsed)
    if problem:
        row.outcome, row.reason = "refused", problem
        log.warning("SMS %s refused: %s", row.gateway_id, problem)
        return
    existing = session.scalar(select(Payment).where(Payment.provider == "mpesa",
                                                    Payment.provider_ref == parsed.txn_id))
    if existing is not None:
        row.outcome, row.payment_id = "duplicate", existing.id
        row.reason = fill(N_("transaction %(txn)s was already received"), txn=parsed.txn_id)
        if existing.amount != parsed.amount:  # P6: same provider id, different amount
            row.reason = fill(N_("transaction %(txn)s was already received with amount %(old)s, now %(new)s: "
                                 "suspicious"), txn=parsed.txn_id, old=f"{existing.amount:.2f}",
                              new=f"{parsed.amount:.2f}")
            log.warning("M-PESA %s seen twice with different amounts", parsed.txn_id)
        return
    unit = unit_by_account_number(session, parsed.spaced_reference) if parsed.spaced_reference else None
    if unit is not None:
        why = fill(N_("account number %(number)s"), number=unit.account_number)
        parsed = replace(parsed, reference=unit.account_number)
    else:
        unit, why = match_unit(session, parsed.reference, parsed.phone, currency=parsed.currency)
    if unit is not None and sender.upper() not in estate_sender_ids(session, unit.estate_id, trusted):
        _flag_spoofed(session, row, parsed, fill(N_("sent by %(sender)s, not by a sender id %(estate)s accepts"),
                                                 sender=_clean(sender), estate=unit.estate.name), unit.estate_id)
        return
    payment = Payment(
        provider="mpesa", provider_ref=parsed.txn_id, reference=parsed.reference,
        amount=parsed.amount, currency=parsed.currency, payer_phone=payer_e164(parsed.phone, unit),
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
        payment.status = "unmatched"
        payment.status_reason = _fit(fill(N_("%(why)s, but %(error)s"), why=why, error=error), Payment.status_reason)
    else:
        row.reason = fill(N_("matched by %(why)s"), why=why)
        _flag_one_phone_many_units(session, payment)


def _out_of_bounds(parsed: MpesaConfirmation) -> str | None:
    """Why a confirmation's fields cannot be stored as a payment, or None when they fit."""
    if parsed.reference and len(parsed.reference) > _REFERENCE_MAX:
        return fill(N_("the reference is longer than %(max)s characters"), max=_REFERENCE_MAX)
    if parsed.sender and len(parsed.sender) > _PAYER_NAME_MAX:
        return fill(N_("the payer's name is longer than %(max)s characters"), max=_PAYER_NAME_MAX)
    if parsed.amount >= MAX_AMOUNT:
        return N_("the amount is larger than any payment can be")
    return None


def _flag_spoofed(session: Session, row: SmsMessage, parsed: MpesaConfirmation, why: str,
                  estate_id: int | None) -> None:
    """A payment-looking SMS from a sender that may not credit: stored, audited, never paid."""
    row.outcome, row.reason = "suspicious", fill(N_("suspicious: %(why)s; not credited"), why=why)
    log.warning("SMS %s: %s", row.gateway_id, row.reason)
    session.flush()  # the audit row names the message by id
    audit.record(session, "sms.suspicious", row, estate_id=estate_id, new={
        "from": row.from_number, "txn": parsed.txn_id, "amount": str(parsed.amount),
        "reference": (parsed.reference or "")[:_REFERENCE_MAX] or None,
        "phone": parsed.phone, "reason": _fit(why, SmsMessage.reason)})


def suspicious_messages(session: Session, limit: int = 20) -> list[SmsMessage]:
    """The latest relayed SMS that were flagged suspicious or refused, for staff to look at."""
    return list(session.scalars(select(SmsMessage).where(
        SmsMessage.outcome.in_(("suspicious", "refused"))).order_by(SmsMessage.id.desc()).limit(limit)))


def _flag_one_phone_many_units(session: Session, payment: Payment) -> None:
    """P6: a phone paying into many unrelated units within 30 days is marked for staff."""
    from datetime import timedelta
    since = utcnow() - timedelta(days=30)
    units = session.scalars(select(func.count(func.distinct(Payment.unit_id))).where(
        Payment.provider == "mpesa", Payment.payer_phone == payment.payer_phone,
        Payment.unit_id.is_not(None), Payment.created_at >= since)).one()
    if payment.payer_phone and units > SUSPICIOUS_UNITS_PER_PHONE:
        payment.status_reason = fill(N_("suspicious: %(phone)s paid into %(units)s units in 30 days"),
                                     phone=payment.payer_phone, units=units)
        log.warning("M-PESA %s: %s", payment.provider_ref, payment.status_reason)


def _apply_update(session: Session, update: dict[str, Any]) -> None:
    """A delivery status of an SMS we sent: SENT/DELIVERED close it, FAILED records why."""
    notification_id = _outgoing_notification_id(_text(update.get("id")) or "")
    row = session.get(Notification, notification_id) if notification_id else None
    if row is None or row.channel != "sms":
        return
    status = (_text(update.get("status")) or "").upper()
    if status in ("SENT", "DELIVERED") and row.status != "sent":
        row.status, row.sent_at, row.error = "sent", utcnow(), None
    elif status == "FAILED" and row.status == "pending":
        reason = _clean(_text(update.get("reason")) or "").strip() or N_("gateway reported FAILED")
        row.status, row.error = "failed", reason[:500]
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
    """Our id from 'mw-<n>'; None for anything else, including ids no row can have."""
    found = re.fullmatch(r"mw-([0-9]{1,12})", message_id)
    if found is None:
        return None
    value = int(found[1])
    return value if 0 < value <= MAX_ROW_ID else None


def _dialable(phone: str) -> str:
    """E.164 when the number says its country; else the digits, dialled as local by the phone."""
    return phones.try_e164(phone, None) or normalise_phone(phone)


def _from_epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
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
