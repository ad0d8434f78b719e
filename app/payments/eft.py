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
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from app import audit
from app.i18n.label_texts import N_
from app.models.payments import Payment
from app.money import MoneyError, parse_amount, to_decimal
from app.payments import PaymentError
from app.payments.credit import check_amount, credit_payment
from app.payments.mpesa_sms import match_unit

COLUMN_ALIASES = {
    "date": ("date", "transaction date", "value date"),
    "amount": ("amount", "credit", "credit amount"),
    "reference": ("reference", "description", "ref"),
    "bank_ref": ("bank_ref", "bank reference", "transaction id", "id"),
}
MAX_ROWS = 5000
MAX_CELL = 1000  # characters: far more than any bank writes, far less than the csv limit
# payments.amount is numeric(20, 6): at most 14 digits before the point.
AMOUNT_LIMIT = Decimal(10) ** 14
_CSV_PROBLEMS = {
    "new-line character seen in unquoted field": N_("a line break inside a field that is not in quotes"),
    "field larger than field limit": N_("a field longer than the CSV reader's limit"),
}


class StatementError(PaymentError, ValueError):
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
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise StatementError(gettext("the header line cannot be read: %(problem)s", problem=_csv_problem(error))) from None
    columns = _columns(header)
    report = ImportReport()
    seen: set[str] = set()
    rows = 0
    while True:
        # Read row by row: a line the csv module cannot parse is that row's error, not the file's.
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            report.rows.append(RowResult(reader.line_num, "error",
                                         gettext("the line cannot be read as CSV: %(problem)s",
                                                 problem=_csv_problem(error))))
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise StatementError(gettext("a statement may have at most %(max)s rows", max=MAX_ROWS))
        values = {name: (row[index] if index < len(row) else "").strip() for name, index in columns.items()}
        if values["bank_ref"] in seen:
            report.rows.append(RowResult(line, "duplicate", gettext("bank reference %(ref)s appears earlier in "
                                                                    "this file", ref=values["bank_ref"])))
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
        except DataError as error:
            # A value the checks above let through but the database refuses: this row only.
            savepoint.rollback()
            report.rows.append(RowResult(line, "error", gettext("the row cannot be stored: %(error)s",
                                                                error=str(error.orig).splitlines()[0][:200])))
        else:
            savepoint.commit()
            seen.add(values["bank_ref"])
            matched = (gettext("matched to unit %(unit)s", unit=payment.unit.number) if payment.unit
                       else gettext("unmatched"))
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
            outcomes.append((payment_id, gettext("not an EFT payment")))
            continue
        if payment.status == "credited":
            outcomes.append((payment_id, gettext("already credited")))
            continue
        if payment.status != "to_confirm":
            outcomes.append((payment_id, gettext("%(status)s: assign it to a unit first",
                                                 status=payment.status)))
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
    field = "bank_ref"  # a typed-in deposit shows it next to the bank reference

    def __init__(self, message: str, payment_id: int):
        super().__init__(message)
        self.payment_id = payment_id


def _new_payment(session: Session, bank_ref: str, amount: str, reference: str, paid_on: str,
                 user_id: int | None, *, typed: bool = False) -> Payment:
    for name, text in ((N_("bank reference"), bank_ref), (N_("amount"), amount), (N_("reference"), reference),
                       (N_("date"), paid_on)):
        if "\x00" in text:
            raise PaymentError(gettext("the %(name)s contains a NUL character", name=gettext(name)))
        if len(text) > MAX_CELL:
            raise PaymentError(gettext("the %(name)s is longer than %(max)s characters", name=gettext(name),
                                       max=MAX_CELL))
    bank_ref = bank_ref.strip()
    if not bank_ref or len(bank_ref) > 64:
        raise PaymentError(gettext("a bank reference of 1 to 64 characters is required"), field="bank_ref")
    existing = session.scalar(select(Payment.id).where(Payment.provider == "eft",
                                                       Payment.provider_ref == bank_ref))
    if existing is not None:
        raise _Duplicate(gettext("bank reference %(ref)s was imported before", ref=bank_ref), existing)
    unit, why = match_unit(session, reference.strip() or None, None)
    estate = unit.estate if unit else None
    # A person typing follows the form rules; a bank's file may write "1,000.00".
    try:
        value = parse_amount(amount, estate.currency if estate else "ZAR") if typed else to_decimal(amount)
    except MoneyError as error:
        raise PaymentError(str(error), field="amount") from None
    if value >= AMOUNT_LIMIT or value.as_tuple().exponent < -6:  # beyond the amount column
        raise PaymentError(gettext("amount %(amount)s is not a bank amount (at most 14 digits and 6 decimals)",
                                   amount=repr(amount)), field="amount")
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


def _csv_problem(error: csv.Error) -> str:
    """The csv module's complaint in words a staff member can act on."""
    text = str(error)
    return next((gettext(plain) for known, plain in _CSV_PROBLEMS.items() if text.startswith(known)), text)


def _columns(header: list[str]) -> dict[str, int]:
    """Map our column names to the file's header positions; refuse files missing any."""
    by_lower: dict[str, int] = {}
    for index, name in enumerate(header):
        by_lower.setdefault(name.strip().lower(), index)
    found, missing = {}, []
    for name, aliases in COLUMN_ALIASES.items():
        column = next((by_lower[a] for a in aliases if a in by_lower), None)
        if column is None:
            missing.append(name)
        else:
            found[name] = column
    if missing:
        raise StatementError(gettext("the file has no %(columns)s column (expected headers: date, amount, "
                                     "reference, bank_ref)", columns=", ".join(missing)))
    return found


def _parse_date(text: str) -> date:
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise PaymentError(gettext("date %(text)s is not YYYY-MM-DD or DD/MM/YYYY", text=repr(text)), field="paid_on")
