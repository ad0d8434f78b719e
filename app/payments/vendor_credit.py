"""Credit push to vendor meters (P5): a credited payment on a SparkMeter-managed unit is
forwarded to Koios as a payment, idempotent by external id (`meterwise:<payment id>`).

`credit_payment()` queues the push for every payment it credits, whatever the provider
(PayFast, M-PESA, EFT, a staff assignment): a job pushes it once the credit commits, and the
staff payments page shows the outcome and offers "Push to SparkMeter" again after a failure.
A push holds the payment's row lock, so the job and a staff retry never push at once, and the
payment is looked up by external id first, so a push whose answer was lost is never sent twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.estates.settings_catalog import setting_default
from app.i18n.stored import N_, fill
from app.settings import get_setting
from app.jobs import enqueue_after_commit, job
from app.models import Meter
from app.models.payments import Payment

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 15


class KoiosError(Exception):
    """Koios refused or could not be reached."""


@dataclass(frozen=True)
class PushResult:
    ok: bool
    message: str


class KoiosPayments:
    """The two Koios v1 payment calls the push needs."""

    def __init__(self, base_url: str, api_key: str, api_secret: str):
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-KEY": api_key, "X-API-SECRET": api_secret}

    def find(self, external_id: str) -> dict | None:
        """Return the Koios payment with this external id, or None (404)."""
        response = self._call("GET", "/api/v1/payments", params={"external_id": external_id})
        if response.status_code == 404:
            return None
        if not response.ok:
            raise KoiosError(fill(N_("lookup answered %(status)s"), status=response.status_code))
        data = (response.json() or {}).get("data") if response.content else None
        if isinstance(data, list):
            data = data[0] if data else None
        return data or None

    def create(self, customer_code: str, amount: str, memo: str, external_id: str) -> dict | None:
        """POST the payment; None for a 2xx with an empty body (probable success)."""
        response = self._call("POST", "/api/v1/payments", json={
            "customer_code": customer_code, "amount": amount, "memo": memo, "external_id": external_id})
        if not response.ok:
            errors = response.json().get("errors") if response.content else None
            title = errors[0].get("title") if errors else response.text[:200]
            raise KoiosError(fill(N_("Koios refused the payment (%(status)s): %(title)s"),
                                  status=response.status_code, title=title))
        if not response.content:
            return None
        return response.json().get("data") or None

    def reverse(self, payment_id: str, external_id: str, memo: str) -> dict | None:
        """POST /api/v1/payments/{id}/reverse: a reversal with its own external id."""
        response = self._call("POST", f"/api/v1/payments/{payment_id}/reverse",
                              json={"external_id": external_id, "memo": memo})
        if not response.ok:
            errors = response.json().get("errors") if response.content else None
            title = errors[0].get("title") if errors else response.text[:200]
            raise KoiosError(fill(N_("Koios refused the reversal (%(status)s): %(title)s"),
                                  status=response.status_code, title=title))
        if not response.content:
            return None
        return response.json().get("data") or None

    def _call(self, method: str, path: str, **options) -> requests.Response:
        try:
            return requests.request(method, self.base_url + path, headers=self.headers,
                                    timeout=TIMEOUT_SECONDS, **options)
        except requests.RequestException as error:
            raise KoiosError(fill(N_("Koios unreachable: %(error)s"), error=error)) from None


def vendor_customer_code(session: Session, payment: Payment) -> str | None:
    """The Koios customer code of a SparkMeter-managed unit, else None.

    Formed by the estate setting `sparkmeter_customer_code` (default "{unit}": the unit
    number; "C-{serial}" uses the SparkMeter meter's serial, as the Koios emulator does).
    """
    if payment.unit_id is None:
        return None
    serial = session.scalar(select(Meter.serial).where(vendor_meter(payment.unit_id)).limit(1))
    if serial is None:
        return None
    pattern = get_setting(session, "sparkmeter_customer_code", payment.unit.estate_id,
                          default=setting_default("sparkmeter_customer_code"))
    return str(pattern).format(unit=payment.unit.number, serial=serial)


def vendor_meter(unit_id):
    """The SQL condition of a unit's attached SparkMeter meter (`unit_id`: a value or a column)."""
    return (Meter.unit_id == unit_id) & (Meter.protocol == "sparkmeter") & Meter.detached_at.is_(None)


def vendor_units(session: Session, unit_ids: set[int]) -> set[int]:
    """Of these units, the SparkMeter-managed ones (a batch asks once, then pushes only those)."""
    return set(session.scalars(select(Meter.unit_id).where(
        Meter.unit_id.in_(unit_ids or {0}), Meter.protocol == "sparkmeter", Meter.detached_at.is_(None)).distinct()))


def queue_vendor_push(session: Session, payment: Payment) -> None:
    """For a SparkMeter-managed unit, push the credited payment once the caller commits."""
    if payment.status == "credited" and vendor_customer_code(session, payment):
        payment.vendor_push_status = "queued"
        enqueue_after_commit(session, "vendor_credit_push", payment.id, track=False)


def push_payment(session: Session, payment: Payment, client: KoiosPayments | None = None) -> PushResult:
    """Forward one credited payment to Koios, idempotently; record and return the outcome; commits once."""
    result = _push(session, payment, client)
    session.commit()
    return result


def _push(session: Session, payment: Payment, client: KoiosPayments | None) -> PushResult:
    code = vendor_customer_code(session, payment)
    if code is None:
        return PushResult(False, N_("the unit has no SparkMeter meter"))
    if payment.status != "credited":
        return PushResult(False, N_("only credited payments are forwarded"))
    # Wait for a push of the same payment running elsewhere (the job, a staff retry).
    session.refresh(payment, ["vendor_push_status", "vendor_push_result"], with_for_update=True)
    if payment.vendor_push_status == "pushed":
        return PushResult(True, payment.vendor_push_result or N_("already pushed"))
    config = current_app.config
    client = client or KoiosPayments(config["KOIOS_URL"], config["KOIOS_API_KEY"],
                                     config["KOIOS_API_SECRET"])
    external_id = f"meterwise:{payment.id}"
    try:
        found = client.find(external_id)
        if found is None:
            created = client.create(code, f"{payment.amount:.2f}",
                                    f"Meterwise {payment.provider} {payment.provider_ref}", external_id)
            found = created or client.find(external_id)
            if found is None:
                raise KoiosError(N_("Koios answered without a body and the payment cannot be found yet"))
        result = PushResult(True, fill(N_("Koios payment %(id)s for customer %(code)s"), id=found.get("id", "?"),
                                       code=code))
    except KoiosError as error:
        result = PushResult(False, str(error))
    payment.vendor_push_status = "pushed" if result.ok else "failed"
    payment.vendor_push_result = result.message[:300]
    return result


def reversal_external_id(payment: Payment) -> str:
    """The Koios external id of a payment's reversal: its own, so a retry never reverses twice."""
    return f"meterwise:reversal:{payment.id}"


def queue_vendor_reversal(session: Session, correction, payment: Payment) -> None:
    """For a SparkMeter-managed unit, reverse the payment's Koios push once the caller commits."""
    if vendor_customer_code(session, payment) or payment.vendor_push_status:
        correction.vendor_status = "queued"
        session.flush()
        enqueue_after_commit(session, "vendor_credit_reversal", correction.id, track=False)


def reverse_vendor_payment(session: Session, correction, client: KoiosPayments | None = None) -> PushResult:
    """Reverse at Koios the push of a corrected payment, idempotently; record the outcome; commits once."""
    result = _reverse_at_vendor(session, correction, client)
    session.commit()
    return result


def _reverse_at_vendor(session: Session, correction, client: KoiosPayments | None) -> PushResult:
    payment = session.get(Payment, correction.payment_id) if correction.payment_id else None
    if payment is None:
        return PushResult(False, N_("the correction has no payment"))
    # A staff retry and the job never reverse at once.
    session.refresh(correction, ["vendor_status", "vendor_result"], with_for_update=True)
    if correction.vendor_status in ("reversed", "none"):
        return PushResult(True, correction.vendor_result or N_("already reversed"))
    config = current_app.config
    client = client or KoiosPayments(config["KOIOS_URL"], config["KOIOS_API_KEY"],
                                     config["KOIOS_API_SECRET"])
    external_id = reversal_external_id(payment)
    status = "reversed"
    try:
        found = client.find(external_id)
        if found is None:
            original = client.find(f"meterwise:{payment.id}")
            if original is None:
                status = "none"
                found = {}
            else:
                found = client.reverse(original.get("id", ""), external_id,
                                       f"Meterwise correction #{correction.id}: {correction.reason}"[:200])
                found = found or client.find(external_id)
                if found is None:
                    raise KoiosError(N_("Koios answered without a body and the reversal cannot be found yet"))
        if status == "none":
            result = PushResult(True, N_("SparkMeter never received this payment: nothing to reverse there"))
        else:
            result = PushResult(True, fill(N_("Koios reversal %(id)s of %(amount)s recorded"), id=found.get("id", "?"),
                                       amount=found.get("amount", "")))
    except KoiosError as error:
        status, result = "failed", PushResult(False, str(error))
    correction.vendor_status = status
    correction.vendor_result = result.message[:300]
    return result


@job("vendor_credit_reversal")
def vendor_credit_reversal(session: Session, progress, correction_id: int) -> str:
    """Job: reverse one corrected payment at Koios; a failure raises so the queue retries."""
    from app.models.corrections import Correction
    correction = session.get(Correction, correction_id)
    if correction is None or correction.vendor_status in ("reversed", "none"):
        return N_("nothing to reverse")
    result = reverse_vendor_payment(session, correction)
    if not result.ok:
        raise KoiosError(result.message)
    return result.message


@job("vendor_credit_push")
def vendor_credit_push(session: Session, progress, payment_id: int) -> str:
    """Job: push one payment to Koios; a failure raises so the queue retries with backoff."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.vendor_push_status == "pushed":
        return N_("nothing to push")
    result = push_payment(session, payment)
    if not result.ok:
        raise KoiosError(result.message)
    return result.message
