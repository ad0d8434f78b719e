"""Monthly statements (O5): the archived PDF of a unit's month, and each email delivery of it."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

DELIVERY_STATUSES = ("pending", "sent", "logged", "failed")  # logged: MAIL_URL unset, only written to the log


class Statement(Base):
    """A unit's issued statement for one month: its figures, their hash and the PDF, never rewritten."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("unit_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the estate's timezone
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)  # the numbers the PDF shows
    figures_sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # the owner's copy (staff see it too)
    # The tenant's copy, without the owner's levy section; only when the statement has one.
    tenant_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    # Set when a later run computed different figures: the archived PDF stays as issued.
    discrepancy: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deliveries: Mapped[list["StatementDelivery"]] = relationship(
        back_populates="statement", order_by="StatementDelivery.id")


class StatementDelivery(Base):
    """One email of a statement to an owner or tenant: attempts, outcome, last error."""

    __tablename__ = "statement_deliveries"
    __table_args__ = (UniqueConstraint("statement_id", "to_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    role: Mapped[str] = mapped_column(String(16))  # owner | tenant
    to_address: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    statement: Mapped[Statement] = relationship(back_populates="deliveries")
