"""PayFast (P1, P4): the signed checkout form and the ITN handler that credits the wallet.

Facts from PayFast's documentation (../shared/INTEGRATIONS.md): the checkout signature
uses PayFast's fixed field order (empty fields left out); the ITN signature uses the
fields in the order they were posted, up to `signature`; both append the passphrase.
"""
from __future__ import annotations

import hashlib
import logging
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
from app.ledger.accounts import metered_utilities
from app.models import Unit, User, utcnow
from app.models.payments import Payment
from app.money import MoneyError, parse_amount, quantize, to_decimal
from app.payments.credit import PaymentError, check_amount, credit_payment

log = logging.getLogger(__name__)

# PayFast's fixed order for the checkout form's signature.
CHECKOUT_FIELD_ORDER = (
    "merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url",
    "name_first", "name_last", "email_address", "cell_number",
    "m_payment_id", "amount", "item_name", "item_description",
    "custom_int1", "custom_int2", "custom_int3", "custom_int4", "custom_int5",
    "custom_str1", "custom_str2", "custom_str3", "custom_str4", "custom_str5",
    "email_confirmation", "confirmation_address", "payment_method",
)
AMOUNT_TOLERANCE = Decimal("0.01")
VALIDATE_TIMEOUT_SECONDS = 10


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

def param_string(fields: Sequence[tuple[str, str]], *, skip_empty: bool = False) -> str:
    """`key=quote_plus(value)` joined by `&`, stopping at `signature`."""
    parts = []
    for key, value in fields:
        if key == "signature":
            break
        if skip_empty and (value is None or str(value).strip() == ""):
            continue
        parts.append(f"{key}={quote_plus(str(value).strip())}")
    return "&".join(parts)


def sign(params: str, passphrase: str) -> str:
    """MD5 of the parameter string with the passphrase appended (lowercase hex)."""
    if passphrase:
        params = f"{params}&passphrase={quote_plus(passphrase.strip())}"
    return hashlib.md5(params.encode()).hexdigest()


def checkout_signature(fields: dict[str, str], passphrase: str) -> str:
    """Sign checkout fields in PayFast's fixed order, empty fields left out."""
    ordered = [(name, fields[name]) for name in CHECKOUT_FIELD_ORDER if name in fields]
    return sign(param_string(ordered, skip_empty=True), passphrase)


# --- checkout (P4) ------------------------------------------------------------------------

def start_checkout(session: Session, settings: PayfastSettings, *, unit: Unit, utility: str,
                   amount: str, user: User, return_url: str, cancel_url: str,
                   notify_url: str) -> tuple[Payment, dict[str, str]]:
    """Record a pending payment and return it with the signed form fields for PayFast.

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
        "item_name": f"{utility.replace('_', ' ').capitalize()} top-up unit {unit.number}",
        "custom_int1": str(unit.id), "custom_str1": utility,
    }
    fields = {k: v for k, v in fields.items() if v}
    fields["signature"] = checkout_signature(fields, settings.passphrase)
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
    if form.get("signature", "").lower() != sign(param_string(fields), settings.passphrase):
        return _reject(session, 400, "signature does not match", form)
    payment = session.scalar(select(Payment).where(Payment.checkout_id == form.get("m_payment_id", "")))
    if payment is None:
        return _reject(session, 400, f"unknown m_payment_id {form.get('m_payment_id')!r}", form)
    try:
        gross = to_decimal(form.get("amount_gross", ""))
    except MoneyError:
        return _reject(session, 400, f"amount_gross {form.get('amount_gross')!r} is not a number", form)
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
    name = " ".join(filter(None, (form.get("name_first"), form.get("name_last"))))
    payment.payer_name = payment.payer_name or name or None
    try:
        created = credit_payment(session, payment)
    except PaymentError as error:
        session.rollback()
        return _reject(session, 400, str(error), form)
    session.commit()
    return ItnOutcome(200, "credited" if created else "duplicate ITN: already credited", created)


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
                 new={"reason": reason, "m_payment_id": form.get("m_payment_id"),
                      "pf_payment_id": form.get("pf_payment_id"),
                      "amount_gross": form.get("amount_gross")})
    session.commit()
    return ItnOutcome(code, reason)


def _is_ip(text: str) -> bool:
    return all(part.isdigit() for part in text.split(".")) or ":" in text


@lru_cache(maxsize=32)
def _resolve(host: str) -> frozenset[str]:
    try:
        return frozenset(socket.gethostbyname_ex(host)[2])
    except OSError:
        return frozenset()
