"""Arrears records: a debt a person owes outside a wallet pocket (A4).

A debt carried from a move-out, an unpaid levy, a balance migrated from a previous system or
one staff record by hand. Each record holds its debt in a ledger account of its own (kind
"arrears", negative while owed, like a pocket in debt), so what is outstanding is always the
sum of postings and never a counter of its own (`app.billing.arrears`).
"""
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.ledger import Account

ARREARS_SOURCES = ("move_out", "levy", "migration", "manual")
ARREARS_STATUSES = ("open", "paid", "written_off")


class ArrearsRecord(Base):
    __tablename__ = "arrears_records"
    # One record per thing that caused it (a move-out's tenancy and pocket, a levy charge):
    # opening it twice returns the first.
    __table_args__ = (UniqueConstraint("estate_id", "source", "source_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    utility: Mapped[str | None] = mapped_column(String(16))  # None: not one utility's (a levy)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]  # the debt when the record was opened; what is left is the account's
    reason: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(16))  # ARREARS_SOURCES
    source_ref: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="open")  # ARREARS_STATUSES
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    account: Mapped[Account | None] = relationship()

    @property
    def outstanding(self) -> Decimal:
        """What is still owed: the record's account, negative while in debt, turned positive."""
        return -self.account.balance if self.account is not None else Decimal("0")

    def __repr__(self) -> str:
        return f"<ArrearsRecord {self.id} {self.amount} {self.currency} {self.status}>"
