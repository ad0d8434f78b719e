"""PayFast (P1, P4): the signed checkout form and the ITN handler that credits the wallet.

Facts from PayFast's documentation (../shared/INTEGRATIONS.md): the checkout signature
uses PayFast's fixed field order (empty fields left out, values trimmed as PayFast's own
generator does); the ITN signature uses every posted field but `signature`, in the order
posted, with the values exactly as posted (never trimmed); both append the passphrase.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from urllib.parse import quote_plus

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.labels import label
from app.ledger.accounts import metered_utilities
from app.models import Unit, User, utcnow
from app.models.payments import Payment
from app.money import MoneyError, parse_amount, quantize, to_decimal
from app.payments import PaymentError
from app.payments.credit import check_amount, credit_payment

log = logging.getLogger(__name__)

# PayFast's documented order of the checkout form's attributes (merchant, customer,
# transaction, options, payment method, recurring billing); the signature follows it.
CHECKOUT_FIELD_ORDER = (
    "merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url", "notify_method",
    "name_first", "name_last", "email_address", "cell_number",
    "m_payment_id", "amount", "item_name", "item_description",
    "custom_int1", "custom_int2", "custom_int3", "custom_int4", "custom_int5",
    "custom_str1", "custom_str2", "custom_str3", "custom_str4", "custom_str5",
    "email_confirmation", "confirmation_address", "currency", "payment_method",
    "subscription_type", "billing_date", "recurring_amount", "frequency", "cycles",
    "subscription_notify_email", "subscription_notify_webhook", "subscription_notify_buyer",
)
AMOUNT_TOLERANCE = Decimal("0.01")
VALIDATE_TIMEOUT_SECONDS = 10
# Bounds checked before the database sees an ITN: PayFast's longest field is 255 characters;
# m_payment_id and pf_payment_id must fit the columns they are looked up in and stored to.
MAX_ITN_VALUE = 1000
MAX_ITN_FIELDS = 100
ITN_COLUMN_LIMITS = {"m_payment_id": 32, "pf_payment_id": 64}
PAYER_NAME_LIMIT = 200
_AMOUNT = re.compile(r"-?\d{1,13}(\.\d{1,6})?")


class UnknownCheckoutField(ValueError):
    """A checkout field PayFast does not document: it cannot be signed, so it is not sent."""


@dataclass(frozen=True)
class PayfastSettings:
    merchant_id: str
    merchant_key: str
    passphrase: str
    process_url: str
    validate_url: str  # empty: do not confirm with the gateway
    valid_sources: tuple[str, ...]

    @classmethod
    def from_config(cls, config) -> PayfastSettings:
        """Read the PAYFAST_* settings of a Flask config."""
        return cls(config["PAYFAST_MERCHANT_ID"], config["PAYFAST_MERCHANT_KEY"],
                   config["PAYFAST_PASSPHRASE"], config["PAYFAST_PROCESS_URL"],
                   config["PAYFAST_VALIDATE_URL"],
                   tuple(s.strip() for s in config["PAYFAST_VALID_SOURCES"].split(",") if s.strip()))


@dataclass(frozen=True)
class ItnOutcome:
    """What the ITN handler decided: the HTTP status to answer and why."""

    status_code: int
    message: str
    credited: bool = False


# --- signatures --------------------------------------------------------------------------

def param_string(fields: Sequence[tuple[str, str]]) -> str:
    """The ITN parameter string: every field but `signature`, in order, values exactly as posted."""
    return "&".join(f"{key}={quote_plus(str(value))}" for key, value in fields if key != "signature")


def sign(params: str, passphrase: str) -> str:
    """MD5 of the parameter string with the passphrase appended (lowercase hex)."""
    if passphrase:
        params = f"{params}&passphrase={quote_plus(passphrase.strip())}"
    return hashlib.md5(params.encode()).hexdigest()


def checkout_signature(fields: dict[str, str], passphrase: str) -> str:
    """Sign every checkout field in PayFast's documented order, empty fields left out."""
    unknown = sorted(set(fields) - set(CHECKOUT_FIELD_ORDER) - {"signature"})
    if unknown:
        raise UnknownCheckoutField(f"PayFast does not document the checkout field(s) {', '.join(unknown)}")
    ordered = [(name, str(fields[name]).strip()) for name in CHECKOUT_FIELD_ORDER
               if name in fields and fields[name] is not None and str(fields[name]).strip()]
    return sign("&".join(f"{key}={quote_plus(value)}" for key, value in ordered), passphrase)


# --- checkout (P4) ------------------------------------------------------------------------

def start_checkout(session: Session, settings: PayfastSettings, *, unit: Unit, utility: str,
                   amount: str, user: User, return_url: str, cancel_url: str,
                   notify_url: str) -> tuple[Payment, dict[str, str]]:
    """Record a pending payment and return it with the signed form fields for PayFast; commits once.

    "{checkout_id}" in `cancel_url` becomes the checkout's id, so the return names it.
    """
    estate = unit.estate
    if utility not in metered_utilities(session, unit.id):
        # A pocket with no meter could never be spent: top-ups go to pockets a meter draws on.
        raise PaymentError(f"unit {unit.number} has no {utility.replace('_', ' ')} meter to top up")
    try:
        value = quantize(parse_amount(amount, estate.currency), estate.currency)
    except MoneyError as error:
        raise PaymentError(str(error)) from None
    if value < Decimal("5"):
        raise PaymentError("the smallest top-up is 5.00")
    check_amount(session, value, estate)
    payment = Payment(
        provider="payfast", checkout_id=secrets.token_hex(8), estate_id=estate.id,
        unit_id=unit.id, utility=utility, amount=value, currency=estate.currency,
        status="pending", created_by_user_id=user.id,
        payer_email=(user.person.email if user.person else None) or user.email,
    )
    session.add(payment)
    session.flush()
    audit.record(session, "payment.checkout", payment, estate_id=estate.id,
                 new={"unit": unit.number, "utility": utility, "amount": str(value)})
    fields = {
        "merchant_id": settings.merchant_id, "merchant_key": settings.merchant_key,
        "return_url": return_url, "notify_url": notify_url,
        "cancel_url": cancel_url.replace("{checkout_id}", payment.checkout_id),
        "email_address": payment.payer_email or "",
        "m_payment_id": payment.checkout_id, "amount": f"{value:.2f}",
        "item_name": f"{label('utility', utility)} top-up unit {unit.number}",
        "custom_int1": str(unit.id), "custom_str1": utility,
    }
    # Posted exactly as signed: PayFast trims values before checking the signature.
    fields = {k: v.strip() for k, v in fields.items() if v and v.strip()}
    fields["signature"] = checkout_signature(fields, settings.passphrase)
    session.commit()
    return payment, fields


def checkout_expiry_cutoff(now: datetime | None = None, minutes: int | None = None) -> datetime:
    """Checkouts started before this moment and still unpaid show as expired (setting
    CHECKOUT_EXPIRY_MINUTES, 60 by default); a late ITN for one is still credited once."""
    if minutes is None:
        from flask import current_app
        minutes = int(current_app.config.get("CHECKOUT_EXPIRY_MINUTES", 60))
    return (now or utcnow()) - timedelta(minutes=minutes)


def cancel_checkout(session: Session, checkout_id: str, user: User) -> Payment | None:
    """Mark the user's own unpaid checkout cancelled when PayFast sends them back; commits.

    Returns the payment, or None when the id is not one of the user's checkouts. An ITN that
    still arrives for it (PayFast completed it after all) credits it as usual.
    """
    payment = session.scalar(select(Payment).where(
        Payment.checkout_id == checkout_id, Payment.provider == "payfast",
        Payment.created_by_user_id == user.id).with_for_update())
    if payment is None:
        return None
    if payment.status == "pending":
        audit.record(session, "payment.status", payment, old={"status": "pending"},
                     new={"status": "cancelled"}, estate_id=payment.estate_id)
        payment.status, payment.status_reason = "cancelled", "cancelled at PayFast by the payer"
        session.commit()
    return payment


# --- ITN (P1) -----------------------------------------------------------------------------

def handle_itn(session: Session, settings: PayfastSettings, fields: Sequence[tuple[str, str]],
               source_ip: str | None) -> ItnOutcome:
    """Verify one ITN (source, signature, amount, status, gateway) and credit the pocket once."""
    form = dict(fields)
    if not source_allowed(source_ip, settings.valid_sources):
        return _reject(session, 403, f"ITN from {source_ip} is not from a PayFast host", form)
    problem = malformed(fields)
    if problem:
        return _reject(session, 400, problem, form)
    if not hmac.compare_digest(form.get("signature", "").lower().encode(),
                               sign(param_string(fields), settings.passphrase).encode()):
        return _reject(session, 400, "signature does not match", form)
    payment = session.scalar(select(Payment).where(Payment.checkout_id == form.get("m_payment_id", "")))
    if payment is None:
        return _reject(session, 400, f"unknown m_payment_id {form.get('m_payment_id')!r}", form)
    if not _AMOUNT.fullmatch(form.get("amount_gross", "")):
        return _reject(session, 400, f"amount_gross {form.get('amount_gross')!r} is not a number", form)
    gross = to_decimal(form["amount_gross"])
    if abs(gross - payment.amount) > AMOUNT_TOLERANCE:
        return _reject(session, 400, f"amount_gross {gross} does not match {payment.amount:.2f}", form)
    pf_payment_id = form.get("pf_payment_id", "").strip()
    if not pf_payment_id:
        return _reject(session, 400, "pf_payment_id is missing", form)
    if payment.status == "credited":
        if payment.provider_ref == pf_payment_id:
            return ItnOutcome(200, "duplicate ITN: already credited")
        return _reject(session, 400, f"payment already credited by pf_payment_id {payment.provider_ref}", form)
    status = form.get("payment_status", "")
    if status != "COMPLETE":
        return _record_status(session, payment, status)
    if settings.validate_url and not confirmed_by_gateway(settings.validate_url, param_string(fields)):
        return _reject(session, 400, "the gateway did not confirm the ITN (not VALID)", form)

    # Lock the payment row: concurrent copies of one ITN wait here, then see it credited.
    payment = session.scalar(select(Payment).where(Payment.id == payment.id)
                             .with_for_update().execution_options(populate_existing=True))
    if payment.status == "credited":
        return ItnOutcome(200, "duplicate ITN: already credited")
    payment.provider_ref = pf_payment_id
    payment.paid_at = utcnow()
    payment.raw = form
    name = " ".join(filter(None, (form.get("name_first", "").strip(), form.get("name_last", "").strip())))
    payment.payer_name = payment.payer_name or name[:PAYER_NAME_LIMIT] or None
    try:
        created = credit_payment(session, payment)
    except PaymentError as error:
        session.rollback()
        return _reject(session, 400, str(error), form)
    session.commit()
    return ItnOutcome(200, "credited" if created else "duplicate ITN: already credited", created)


def malformed(fields: Sequence[tuple[str, str]]) -> str | None:
    """Why an ITN's fields cannot be genuine (repeated, NUL, too long), or None."""
    if len(fields) > MAX_ITN_FIELDS:
        return f"an ITN has at most {MAX_ITN_FIELDS} fields"
    seen = set()
    for key, value in fields:
        if key in seen:
            # dict(fields) keeps the last copy; the signature covers both: never genuine.
            return f"field {_shown(key)} is posted more than once"
        seen.add(key)
        if "\x00" in key or "\x00" in value:
            return f"field {_shown(key)} contains a NUL character"
        limit = ITN_COLUMN_LIMITS.get(key, MAX_ITN_VALUE)
        if len(key) > MAX_ITN_VALUE or len(value) > limit:
            return f"field {_shown(key)} is longer than {limit} characters"
    return None


def source_allowed(ip: str | None, sources: Sequence[str]) -> bool:
    """Whether `ip` is one of the configured addresses or resolves from a configured host."""
    if not ip:
        return False
    if ip in sources:
        return True
    return any(ip in _resolve(host) for host in sources if not _is_ip(host))


def confirmed_by_gateway(url: str, params: str) -> bool:
    """POST the parameter string back to PayFast; the body must be exactly VALID."""
    try:
        response = requests.post(url, data=params, timeout=VALIDATE_TIMEOUT_SECONDS,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    except requests.RequestException as error:
        log.warning("PayFast validate call failed: %s", error)
        return False
    return response.ok and response.text.strip() == "VALID"


def _record_status(session: Session, payment: Payment, status: str) -> ItnOutcome:
    """FAILED and CANCELLED close a pending payment; PENDING waits for the next ITN."""
    new = {"FAILED": "failed", "CANCELLED": "cancelled"}.get(status)
    if new and payment.status == "pending":
        audit.record(session, "payment.status", payment, old={"status": payment.status},
                     new={"status": new}, estate_id=payment.estate_id)
        payment.status, payment.status_reason = new, f"PayFast reported {status}"
        session.commit()
    return ItnOutcome(200, f"payment_status {status or '(none)'}: nothing credited")


def _reject(session: Session, code: int, reason: str, form: dict[str, str]) -> ItnOutcome:
    """Log and audit a refused ITN; nothing is credited."""
    log.warning("PayFast ITN refused (%s): %s; m_payment_id=%s pf_payment_id=%s", code, reason,
                form.get("m_payment_id"), form.get("pf_payment_id"))
    session.rollback()
    audit.record(session, "payment.itn_refused", "PayFast ITN",
                 new={"reason": _shown(reason, 300), "m_payment_id": _shown(form.get("m_payment_id")),
                      "pf_payment_id": _shown(form.get("pf_payment_id")),
                      "amount_gross": _shown(form.get("amount_gross"))})
    session.commit()
    return ItnOutcome(code, reason)


def _shown(value: str | None, limit: int = 80) -> str | None:
    """A posted value as it may be logged and audited: NUL removed, cut to `limit`."""
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value if len(value) <= limit else value[:limit] + "..."


def _is_ip(text: str) -> bool:
    return all(part.isdigit() for part in text.split(".")) or ":" in text


@lru_cache(maxsize=32)
def _resolve(host: str) -> frozenset[str]:
    try:
        return frozenset(socket.gethostbyname_ex(host)[2])
    except OSError:
        return frozenset()
