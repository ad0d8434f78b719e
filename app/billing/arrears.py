"""Arrears records (A4): opening a debt on a person, paying it down, and what is outstanding.

A record's debt sits in its own ledger account (kind "arrears", code `arrears:<record id>`),
negative while owed, like a pocket in debt. Opening moves the debt there from where it was:
a pocket left negative at move-out is brought back to zero (the pocket +amount, the record's
account −amount), an unpaid levy from the owner's levy pocket, a migrated balance from the
opening-balance account. Paying it down (a recovery share of a top-up, a levy payment, a
write-off) posts into the record's account; the record closes when nothing is outstanding.
So `ArrearsRecord.outstanding` is always the sum of postings, and `ledger verify` covers it.

Both take the caller's session and never commit. Keys: `arrears:open:<record>` and the
caller's own key for each payment (its cause: `recovery:<payment>:<record>` and the like).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import record as audit
from app.ledger import Entry, post
from app.ledger.accounts import system_account
from app.models import Account, Estate, LedgerTransaction, Person, Unit, utcnow
from app.models.arrears import ARREARS_SOURCES, ArrearsRecord
from app.money import quantize

__all__ = ["ArrearsError", "ArrearsRecord", "open_arrears", "pay_arrears", "open_records"]


class ArrearsError(ValueError):
    """The debt cannot be recorded as asked; nothing was written."""


def open_arrears(session: Session, *, estate: Estate, person: Person, amount: Decimal, reason: str,
                 source: str, source_ref: str, against: Account, unit: Unit | None = None,
                 utility: str | None = None, occurred_at: datetime | None = None,
                 user_id: int | None = None) -> ArrearsRecord:
    """Record that `person` owes `amount`, moved onto the record's account from `against`.

    `against` is the account the debt leaves (it is credited +amount): the negative pocket,
    the owner's levy pocket, the opening-balance account. Opening the same (source,
    source_ref) again returns the first record and posts nothing.
    """
    if source not in ARREARS_SOURCES:
        raise ArrearsError(f"unknown arrears source {source!r}")
    amount = quantize(Decimal(amount), estate.currency)
    if amount <= 0:
        raise ArrearsError("an arrears record is for a positive amount owed")
    if against.estate_id != estate.id or against.commodity != estate.currency:
        raise ArrearsError(f"the debt must come from a {estate.currency} account of estate {estate.code}")
    existing = session.scalar(select(ArrearsRecord).where(
        ArrearsRecord.estate_id == estate.id, ArrearsRecord.source == source,
        ArrearsRecord.source_ref == source_ref))
    if existing is not None:
        return existing
    opened_at = occurred_at or utcnow()
    record = ArrearsRecord(estate_id=estate.id, person_id=person.id, unit_id=unit.id if unit else None,
                           utility=utility, currency=estate.currency, amount=amount, reason=reason[:300],
                           source=source, source_ref=source_ref[:100], opened_at=opened_at,
                           created_by_user_id=user_id)
    session.add(record)
    session.flush()
    account = system_account(session, estate, "arrears", str(record.id),
                             name=f"Arrears {record.id}: {person.full_name}"[:200])
    record.account = account
    post(session, Entry(estate_id=estate.id, kind="arrears", idempotency_key=f"arrears:open:{record.id}",
                        legs=[(against.id, amount), (account.id, -amount)], occurred_at=opened_at,
                        memo=reason[:500], created_by_user_id=user_id))
    audit(session, "arrears.open", record, new={"person_id": person.id, "amount": str(amount),
                                                "source": source, "source_ref": source_ref},
          estate_id=estate.id)
    return record


def pay_arrears(session: Session, record: ArrearsRecord, amount: Decimal, *, source: Account, key: str,
                kind: str = "arrears_payment", memo: str = "", occurred_at: datetime | None = None,
                user_id: int | None = None, status_when_cleared: str = "paid") -> Decimal:
    """Pay up to `amount` of the record from `source`; return what was applied (never more than owed).

    `status_when_cleared` is "written_off" when the paying account is bad debt. The caller
    commits; a replayed `key` posts nothing again and applies nothing more.
    """
    if session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key)):
        return Decimal("0")  # this payment was applied already
    session.refresh(record.account, ["balance"])
    owed = record.outstanding
    applied = min(quantize(Decimal(amount), record.currency), owed)
    if applied <= 0:
        return Decimal("0")
    posted = post(session, Entry(estate_id=record.estate_id, kind=kind, idempotency_key=key,
                                 legs=[(source.id, -applied), (record.account_id, applied)],
                                 occurred_at=occurred_at, memo=memo[:500], created_by_user_id=user_id))
    if not posted.created:
        return Decimal("0")
    session.refresh(record.account, ["balance"])
    if record.outstanding <= 0 and record.status == "open":
        record.status, record.closed_at = status_when_cleared, occurred_at or utcnow()
        audit(session, f"arrears.{status_when_cleared}", record, new={"status": record.status},
              estate_id=record.estate_id)
    return applied


def open_records(session: Session, *, person_id: int | None = None, unit_id: int | None = None,
                 estate_id: int | None = None) -> list[ArrearsRecord]:
    """Open records, oldest first (the order recovery pays them in)."""
    query = select(ArrearsRecord).where(ArrearsRecord.status == "open")
    if person_id is not None:
        query = query.where(ArrearsRecord.person_id == person_id)
    if unit_id is not None:
        query = query.where(ArrearsRecord.unit_id == unit_id)
    if estate_id is not None:
        query = query.where(ArrearsRecord.estate_id == estate_id)
    return list(session.scalars(query.order_by(ArrearsRecord.opened_at, ArrearsRecord.id)))
