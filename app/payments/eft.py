"""Manual EFT (P3): staff record a deposit or import a bank statement CSV; rows are matched
by reference and wait for staff to confirm; a confirmed row credits once (`eft:<bank ref>`).

An import reports every row (imported, duplicate, or the error); a bad row never stops or
half-writes the others, and nothing is credited before a person confirms it.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models.payments import Payment
from app.money import MoneyError, parse_amount, to_decimal
from app.payments.credit import PaymentError, check_amount, credit_payment
from app.payments.mpesa_sms import match_unit

COLUMN_ALIASES = {
    "date": ("date", "transaction date", "value date"),
    "amount": ("amount", "credit", "credit amount"),
    "reference": ("reference", "description", "ref"),
    "bank_ref": ("bank_ref", "bank reference", "transaction id", "id"),
}
MAX_ROWS = 5000


class StatementError(ValueError):
    """The file as a whole cannot be read (no header, missing columns, too many rows)."""


@dataclass
class RowResult:
    line: int
    status: str  # imported, duplicate, error
    message: str
    payment_id: int | None = None


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)


def record_deposit(session: Session, *, bank_ref: str, amount: str, reference: str,
                   paid_on: str, user_id: int | None) -> Payment:
    """Record one bank deposit a staff member typed in; it waits for confirmation."""
    payment = _new_payment(session, bank_ref, amount, reference, paid_on, user_id, typed=True)
    session.commit()
    return payment


def import_statement(session: Session, text: str, user_id: int | None) -> ImportReport:
    """Import a bank statement CSV: each good row becomes a payment waiting for confirmation."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = _columns(reader.fieldnames or [])
    report = ImportReport()
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise StatementError(f"a statement may have at most {MAX_ROWS} rows")
        values = {name: (row.get(column) or "").strip() for name, column in columns.items()}
        if not any(values.values()):
            continue
        if values["bank_ref"] in seen:
            report.rows.append(RowResult(line, "duplicate", f"bank reference {values['bank_ref']} "
                                         "appears earlier in this file"))
            continue
        savepoint = session.begin_nested()
        try:
            payment = _new_payment(session, values["bank_ref"], values["amount"],
                                   values["reference"], values["date"], user_id)
        except _Duplicate as error:
            savepoint.rollback()
            report.rows.append(RowResult(line, "duplicate", str(error), error.payment_id))
        except (PaymentError, MoneyError, ValueError) as error:
            savepoint.rollback()
            report.rows.append(RowResult(line, "error", str(error)))
        else:
            savepoint.commit()
            seen.add(values["bank_ref"])
            matched = f"matched to unit {payment.unit.number}" if payment.unit else "unmatched"
            report.rows.append(RowResult(line, "imported", matched, payment.id))
    audit.record(session, "payment.eft_import", "EFT statement",
                 new={"imported": report.count("imported"), "duplicates": report.count("duplicate"),
                      "errors": report.count("error")})
    session.commit()
    return report


def confirm_payments(session: Session, payment_ids: list[int], user_id: int | None) -> list[tuple[int, str]]:
    """Credit each matched EFT payment once; return (payment id, outcome) per id."""
    outcomes = []
    for payment_id in payment_ids:
        payment = session.scalar(select(Payment).where(Payment.id == payment_id, Payment.provider == "eft")
                                 .with_for_update().execution_options(populate_existing=True))
        if payment is None:
            outcomes.append((payment_id, "not an EFT payment"))
            continue
        if payment.status == "credited":
            outcomes.append((payment_id, "already credited"))
            continue
        if payment.status != "to_confirm":
            outcomes.append((payment_id, f"{payment.status}: assign it to a unit first"))
            continue
        savepoint = session.begin_nested()
        try:
            credit_payment(session, payment, user_id=user_id)
        except PaymentError as error:
            savepoint.rollback()
            outcomes.append((payment_id, str(error)))
            continue
        savepoint.commit()
        outcomes.append((payment_id, "credited"))
    session.commit()
    return outcomes


class _Duplicate(ValueError):
    def __init__(self, message: str, payment_id: int):
        super().__init__(message)
        self.payment_id = payment_id


def _new_payment(session: Session, bank_ref: str, amount: str, reference: str, paid_on: str,
                 user_id: int | None, *, typed: bool = False) -> Payment:
    bank_ref = bank_ref.strip()
    if not bank_ref or len(bank_ref) > 64:
        raise PaymentError("a bank reference of 1 to 64 characters is required")
    existing = session.scalar(select(Payment.id).where(Payment.provider == "eft",
                                                       Payment.provider_ref == bank_ref))
    if existing is not None:
        raise _Duplicate(f"bank reference {bank_ref} was imported before", existing)
    unit, why = match_unit(session, reference.strip() or None, None)
    estate = unit.estate if unit else None
    # A person typing follows the form rules; a bank's file may write "1,000.00".
    value = parse_amount(amount, estate.currency if estate else "ZAR") if typed else to_decimal(amount)
    value = check_amount(session, value, estate)
    when = _parse_date(paid_on)
    payment = Payment(
        provider="eft", provider_ref=bank_ref, reference=reference.strip()[:100] or None,
        amount=value, status="to_confirm" if unit else "unmatched", status_reason=why,
        unit_id=unit.id if unit else None, estate_id=unit.estate_id if unit else None,
        currency=unit.estate.currency if unit else None, utility=None,  # credit_payment: the metered pocket
        paid_at=datetime.combine(when, time(12), UTC), created_by_user_id=user_id,
    )
    session.add(payment)
    session.flush()
    audit.record(session, "payment.eft_recorded", payment, estate_id=payment.estate_id,
                 new={"bank_ref": bank_ref, "amount": str(value), "reference": reference})
    return payment


def _columns(header: list[str]) -> dict[str, str]:
    """Map our column names to the file's headers; refuse files missing any."""
    by_lower = {name.strip().lower(): name for name in header if name}
    found, missing = {}, []
    for name, aliases in COLUMN_ALIASES.items():
        column = next((by_lower[a] for a in aliases if a in by_lower), None)
        if column is None:
            missing.append(name)
        else:
            found[name] = column
    if missing:
        raise StatementError(f"the file has no {', '.join(missing)} column "
                             f"(expected headers: date, amount, reference, bank_ref)")
    return found


def _parse_date(text: str) -> date:
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise PaymentError(f"date {text!r} is not YYYY-MM-DD or DD/MM/YYYY")
