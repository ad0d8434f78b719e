"""Koios payments import (S2): payments made at SparkMeter, recorded against our units.

Recorded, never credited. A payment Koios lists was made at the vendor (a cash agent, mobile
money into SparkMeter) and SparkMeter has already put that credit on its own meter account.
ThunderCloud top-ups are treated the same way (thundercloud.py keeps ThunderCloudPayment rows
and posts nothing). Crediting the wallet through payments/credit.py as well would sell the same
energy twice, and for a SparkMeter unit the credit push (payments/vendor_credit.py) would then
forward that credit back to Koios as a second vendor payment. So each row lands in
`koios_payments`, matched to a unit for staff to see, and the ledger is left alone.
Payments we pushed ourselves (external id `meterwise:<payment id>`) are recognised, linked to
their Payment and counted as already known.

Matching a customer code to a unit: the Koios customer listing names the meters of each code;
the local SparkMeter meter with that serial gives the unit. Codes the listing does not know fall
back to the estate setting `sparkmeter_customer_code` the credit push uses ("{unit}" by default).

Idempotent by Koios payment id (unique `koios_id`, INSERT ... ON CONFLICT DO NOTHING); a row
that stayed unmatched is tried again on every run, so a meter added later picks it up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.estates.settings_catalog import setting_default
from app.settings import get_setting, put_setting
from app.i18n.stored import N_, fill
from app.jobs import enqueue, job
from app.metering.decoders import DecodeError, parse_time
from app.models import Meter, Unit, canonical_serial, utcnow
from app.models.payments import Payment
from app.models.sources import KoiosPayment
from app.sources.sparkmeter import KoiosApi
from app.routing import whole_number

KOIOS_PAYMENTS_IMPORT = "koios_payments_import"
SINCE_KEY = "koios.payments.since"
OVERLAP = timedelta(days=1)  # re-list a day back: a late-listed payment is not missed (ids dedupe)
OWN_PREFIX = "meterwise:"  # external ids of our own credit pushes (payments/vendor_credit.py)
OWN_REVERSAL_PREFIX = "meterwise:reversal:"  # and of the reversals staff corrections send


@dataclass
class KoiosPaymentsReport:
    """Per run: every listed row ends in exactly one of the counts below."""

    listed: int = 0
    imported: int = 0          # new vendor payments, matched to a unit
    already_known: int = 0     # stored by an earlier run, or our own credit push
    matched_later: int = 0     # stored unmatched earlier, matched now
    unmatched: list[str] = field(default_factory=list)   # "kp-7 (customer C-9)": stored, waiting
    malformed: list[str] = field(default_factory=list)   # "row 3: reason": not stored

    def summary(self) -> str:
        return fill(N_("Koios payments: %(listed)s listed, %(imported)s imported, %(known)s already known, "
                       "%(matched)s matched now, %(unmatched)s unmatched, %(malformed)s malformed"),
                    listed=self.listed, imported=self.imported, known=self.already_known,
                    matched=self.matched_later, unmatched=len(self.unmatched), malformed=len(self.malformed))


def parse_payment(row: object) -> dict:
    """One listed payment as column values; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("not an object")
    koios_id = str(row.get("id") or "").strip()
    if not koios_id:
        raise ValueError("no id")
    try:
        amount = Decimal(str(row.get("amount")).strip())
    except InvalidOperation:
        raise ValueError(f"amount {row.get('amount')!r} is not a decimal") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount {row.get('amount')!r} is not positive")
    moment = row.get("created") or row.get("created_at") or row.get("timestamp")
    try:
        paid_at = parse_time(moment)
    except DecodeError as error:
        raise ValueError(str(error)) from None
    customer = row.get("customer") if isinstance(row.get("customer"), dict) else {}
    code = str(row.get("customer_code") or customer.get("code") or "").strip() or None
    currency = str(row.get("currency") or "").strip().upper()[:3] or None
    return {"koios_id": koios_id[:64], "customer_code": code and code[:64], "amount": amount,
            "currency": currency, "paid_at": paid_at, "memo": (str(row.get("memo") or "") or None),
            "external_id": str(row.get("external_id") or "").strip()[:128] or None}


def customer_meters(session: Session, customers: list[dict]) -> dict[str, Meter]:
    """Customer code -> our SparkMeter meter on a unit (listing first, estate pattern second)."""
    meters = {m.serial: m for m in session.scalars(
        select(Meter).where(Meter.protocol == "sparkmeter", Meter.unit_id.is_not(None)))}
    by_code: dict[str, Meter] = {}
    patterns: dict[int, str] = {}
    for meter in meters.values():
        if meter.estate_id not in patterns:
            patterns[meter.estate_id] = str(get_setting(
                session, "sparkmeter_customer_code", meter.estate_id,
                default=setting_default("sparkmeter_customer_code")))
        try:
            code = patterns[meter.estate_id].format(unit=meter.unit.number, serial=meter.serial)
        except (KeyError, IndexError, ValueError):
            continue  # a pattern staff mistyped matches nothing rather than failing the run
        by_code.setdefault(code, meter)
    for customer in customers:
        code = str(customer.get("code") or "").strip()
        for listed in customer.get("meters") or []:
            serial = canonical_serial(listed.get("serial_number") or "") if isinstance(listed, dict) else ""
            if code and serial in meters:
                by_code[code] = meters[serial]  # the vendor's own word wins over the pattern
                break
    return by_code


def import_koios_payments(session: Session, api: KoiosApi, progress=None) -> KoiosPaymentsReport:
    """List Koios payments since the last run, record new ones against units; commit once."""
    report = KoiosPaymentsReport()
    since = get_setting(session, SINCE_KEY)
    rows = api.list_payments(datetime.fromisoformat(since) - OVERLAP if since else None)
    by_code = customer_meters(session, api.list_customers())
    report.listed = len(rows)
    if progress:
        progress.set_total(len(rows))
    parsed = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict) and str(row.get("external_id") or "").startswith(OWN_REVERSAL_PREFIX):
            report.already_known += 1  # our own correction's reversal (payments/vendor_credit.py)
            continue
        try:
            parsed.append(parse_payment(row))
        except ValueError as error:
            label = row.get("id") if isinstance(row, dict) and row.get("id") else f"row {number}"
            report.malformed.append(f"{label}: {error}")
            if progress:
                progress.error(f"Koios payment {label}: {error}")
                progress.step()
    stored = {p.koios_id: p for p in session.scalars(
        select(KoiosPayment).where(KoiosPayment.koios_id.in_([v["koios_id"] for v in parsed])))}
    for values in parsed:
        existing = stored.get(values["koios_id"])
        if existing is None:
            _record_new(session, values, by_code, report)
        elif existing.unit_id is None and _match(existing, by_code):
            report.matched_later += 1
        elif existing.unit_id is None and existing.origin == "vendor":
            report.unmatched.append(_label(existing.koios_id, existing.customer_code))
        else:
            report.already_known += 1
        if progress:
            progress.step()
    listed = {v["koios_id"] for v in parsed}
    for waiting in session.scalars(select(KoiosPayment).where(
            KoiosPayment.unit_id.is_(None), KoiosPayment.origin == "vendor",
            KoiosPayment.koios_id.not_in(listed) if listed else true())):
        _match(waiting, by_code)  # outside this listing's window: matched quietly, not counted
    newest = max((v["paid_at"] for v in parsed), default=None)
    if newest is not None and (since is None or newest > datetime.fromisoformat(since)):
        put_setting(session, SINCE_KEY, newest.isoformat())
    session.commit()
    return report


def _label(koios_id: str, code: str | None) -> str:
    return f"{koios_id} (customer {code or 'missing'})"


def _record_new(session: Session, values: dict, by_code: dict[str, Meter], report: KoiosPaymentsReport) -> None:
    """Insert one new Koios payment; count it as ours, imported or unmatched."""
    own = _own_payment(session, values["external_id"])
    row = {**values, "origin": "meterwise" if own else "vendor", "imported_at": utcnow()}
    meter = by_code.get(values["customer_code"] or "")
    if own is not None:
        row.update(payment_id=own.id, unit_id=own.unit_id, estate_id=own.estate_id, matched_at=utcnow())
    elif meter is not None:
        row.update(unit_id=meter.unit_id, estate_id=meter.estate_id, meter_serial=meter.serial,
                   matched_at=utcnow())
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = session.execute(insert(KoiosPayment).values(**row).on_conflict_do_nothing(
        index_elements=["koios_id"]).returning(KoiosPayment.id)).first()
    if inserted is None or own is not None:
        report.already_known += 1  # a concurrent run stored it first, or we sent it ourselves
    elif meter is None:
        report.unmatched.append(_label(values["koios_id"], values["customer_code"]))
    else:
        report.imported += 1


def _own_payment(session: Session, external_id: str | None) -> Payment | None:
    """The Payment our credit push sent under this external id, if it is one of ours."""
    if not external_id or not external_id.startswith(OWN_PREFIX):
        return None
    number = external_id[len(OWN_PREFIX):]
    payment_id = whole_number(number, 1)
    return session.get(Payment, payment_id) if payment_id is not None else None


def _match(payment: KoiosPayment, by_code: dict[str, Meter]) -> bool:
    """Attach a stored, unmatched payment to its unit when its customer code is now known."""
    meter = by_code.get(payment.customer_code or "")
    if meter is None:
        return False
    payment.unit_id, payment.estate_id, payment.meter_serial = meter.unit_id, meter.estate_id, meter.serial
    payment.matched_at = utcnow()
    return True


def recent_koios_payments(session: Session, limit: int = 20) -> list[tuple[KoiosPayment, Unit | None]]:
    """The newest recorded Koios payments with their units, for the staff Sources page."""
    return list(session.execute(
        select(KoiosPayment, Unit).outerjoin(Unit, Unit.id == KoiosPayment.unit_id)
        .order_by(KoiosPayment.paid_at.desc(), KoiosPayment.id.desc()).limit(limit)).all())


@job(KOIOS_PAYMENTS_IMPORT)
def koios_payments_job(session: Session, progress) -> str:
    """Worker job: record the payments made at SparkMeter since the last run."""
    report = import_koios_payments(session, KoiosApi.from_config(), progress)
    if report.unmatched:  # the Sources page lists every one; the run names the first few
        more = len(report.unmatched) - 5
        progress.error("unmatched: " + ", ".join(report.unmatched[:5]) + (f" and {more} more" if more > 0 else ""))
    return report.summary()


def start_koios_payments_import(user_id: int | None = None):
    """Start, or join when one is running, the tracked Koios payments import."""
    return enqueue(KOIOS_PAYMENTS_IMPORT, target="koios:payments", user_id=user_id)
