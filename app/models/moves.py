"""Move-out refunds and agents' bulk top-up batches (A2, A3).

A refund is the credit a pocket held after the tenant's final bill, moved onto the estate's
refunds-payable account at move-out; staff mark it paid when the money has gone back. A bulk
top-up batch is the plan an agent confirmed (one row per wallet pocket) and, once run, each
row's outcome: its ledger keys come from the batch id, so running a batch again posts nothing.
"""
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

REFUND_STATUSES = ("owed", "paid")
BULK_TOPUP_STATUSES = ("planned", "running", "done")


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("tenancy_id", "utility"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    tenancy_id: Mapped[int] = mapped_column(ForeignKey("tenancies.id"))
    utility: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(8), default="owed")  # REFUND_STATUSES
    transaction_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_transactions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    paid_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payout_reference: Mapped[str | None] = mapped_column(String(100))


class BulkTopup(Base):
    __tablename__ = "bulk_topups"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(8), default="planned")  # BULK_TOPUP_STATUSES
    description: Mapped[str] = mapped_column(String(300), default="")
    count: Mapped[int] = mapped_column(default=0)
    total: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    # [{"unit_id", "unit", "utility", "amount"}]: what the agent confirmed
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"unit", "utility", "amount", "reason"}]: rows left out when planning, with why
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"unit", "utility", "amount", "outcome", "reason"}], in row order, once run
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    credited: Mapped[int] = mapped_column(default=0)
    finished_at: Mapped[datetime | None]
