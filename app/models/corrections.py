"""Staff corrections (issue 14 item 7) and case notes.

`Correction` is one reversal asked for by a staff member: of any ledger transaction, or of a
payment's credit that goes to another unit (a reassignment). Below the estate's approval
threshold it is carried out at once (status "done"); above it, it waits ("pending") until a
second, different staff member approves ("done") or declines ("declined"). The ledger
entries themselves are `app.ledger.reverse()` and `credit_payment()` postings; this row is the
request, its reason and who decided, plus the SparkMeter (Koios) reversal's outcome.

`CaseNote` is an append-only note about a unit or a person of an estate, read by staff and
the estate's agents: a mistaken note is answered with a new one, never edited away.
"""
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.estate import Estate, Unit
from app.models.ledger import LedgerTransaction
from app.models.people import Person, User

CORRECTION_KINDS = ("reverse", "reassign")
CORRECTION_STATUSES = ("pending", "done", "declined")
VENDOR_REVERSAL_STATUSES = ("queued", "reversed", "failed", "none")
_TX_ID = BigInteger().with_variant(Integer, "sqlite")


class Correction(Base):
    """A staff reversal (or reassignment) of one ledger transaction, with its reason."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[int] = mapped_column(_TX_ID, ForeignKey("ledger_transactions.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    target_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    target_utility: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # The size compared with the approval threshold, in the estate's currency.
    amount: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(String(500))
    reversal_transaction_id: Mapped[int | None] = mapped_column(_TX_ID, ForeignKey("ledger_transactions.id"))
    new_payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    vendor_status: Mapped[str | None] = mapped_column(String(8))
    vendor_result: Mapped[str | None] = mapped_column(String(300))

    estate: Mapped[Estate] = relationship()
    transaction: Mapped[LedgerTransaction] = relationship(foreign_keys=[transaction_id])
    target_unit: Mapped[Unit | None] = relationship()
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_user_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_user_id])


class CaseNote(Base):
    """An append-only note about one unit or one person of an estate."""

    __tablename__ = "case_notes"
    __table_args__ = (
        CheckConstraint("(unit_id IS NULL) <> (person_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User | None] = relationship()
    person: Mapped[Person | None] = relationship()
