"""Body-corporate levies (B3): what a scheme charges its owners, and each charge a run posted.

A `LevyDefinition` says how much, how often and how it is split over the units; a run posts
one `LevyCharge` per unit and month it is due through the ledger (key
`levy:<definition>:<unit>:<period>:<run>`), onto the owner's levy pocket. The charge row is
the run's memory: a (definition, unit, month) with a live charge is never charged again; a
reversed one may be, under the next run number (`app.billing.levies`).
"""
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.estate import Unit

LEVY_FREQUENCIES = ("monthly", "quarterly", "annual")
LEVY_ALLOCATIONS = ("equal", "floor_area", "custom")
LEVY_CHARGE_STATUSES = ("charged", "reversed")
_TX_ID = BigInteger().with_variant(Integer, "sqlite")


class LevyDefinition(Base):
    __tablename__ = "levy_definitions"
    __table_args__ = (UniqueConstraint("estate_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal]  # the levy's total per charge, in the estate's currency
    frequency: Mapped[str] = mapped_column(String(12))  # LEVY_FREQUENCIES
    # Quarterly: one month of the cycle (3 → Mar, Jun, Sep, Dec); annual: the month. Monthly: None.
    charge_month: Mapped[int | None]
    allocation: Mapped[str] = mapped_column(String(12))  # LEVY_ALLOCATIONS
    effective_from: Mapped[str] = mapped_column(String(7))  # YYYY-MM, first month charged
    effective_to: Mapped[str | None] = mapped_column(String(7))  # last month charged; None: open-ended
    unit_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None: every unit of the estate
    custom_amounts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # unit id -> amount ("custom")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    def __repr__(self) -> str:
        return f"<LevyDefinition {self.id} {self.name} {self.amount} {self.frequency}>"


class LevyCharge(Base):
    __tablename__ = "levy_charges"
    __table_args__ = (UniqueConstraint("definition_id", "unit_id", "period", "run"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("levy_definitions.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    run: Mapped[int] = mapped_column(default=1)
    amount: Mapped[Decimal]
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    transaction_id: Mapped[int | None] = mapped_column(_TX_ID, ForeignKey("ledger_transactions.id"))
    status: Mapped[str] = mapped_column(String(10), default="charged")  # LEVY_CHARGE_STATUSES
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    definition: Mapped[LevyDefinition] = relationship()
    unit: Mapped[Unit] = relationship()
