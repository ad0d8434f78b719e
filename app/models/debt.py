"""Debt control (A4): per-pocket credit limits, arrears episodes and the ladder's steps, payment
plans and the escalation tasks on the agent's arrears page.

What is owed is never stored here: pockets and arrears records hold it in the ledger. These
rows hold what people decided about a debt (a limit, a plan, a task) and what the daily ladder
has done in each episode, so each step is applied once.
"""
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

LADDER_ACTIONS = ("warn", "restrict", "suspend", "escalate")
PLAN_FREQUENCIES = ("weekly", "monthly")
PLAN_STATUSES = ("active", "ended")
TASK_STATUSES = ("open", "closed")


class PocketCreditLimit(Base):
    """How far one pocket may go below zero before credit control acts (overrides the estate's)."""

    __tablename__ = "pocket_credit_limits"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    amount: Mapped[Decimal]  # money, in the estate's currency; 0 = no credit
    set_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArrearsEpisode(Base):
    """One spell of a unit in debt: from the day it went into debt until the debt is cleared."""

    __tablename__ = "arrears_episodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    since: Mapped[date]  # the local day the unit went into debt
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    steps_done: Mapped[str] = mapped_column(String(200), default="")  # "0:warn,30:restrict", applied once each
    restricted: Mapped[bool] = mapped_column(default=False)  # recovery at the estate's restricted rate

    @property
    def done(self) -> set[str]:
        return {step for step in self.steps_done.split(",") if step}


class PaymentPlan(Base):
    """An agreed instalment schedule for a unit's debt; the ladder waits while it is kept."""

    __tablename__ = "payment_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    instalment: Mapped[Decimal]
    frequency: Mapped[str] = mapped_column(String(8))  # PLAN_FREQUENCIES
    starts_on: Mapped[date]
    status: Mapped[str] = mapped_column(String(8), default="active")  # PLAN_STATUSES
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class ArrearsTask(Base):
    """A debt handed to the managing agent by the ladder's escalate step: assignable, closable."""

    __tablename__ = "arrears_tasks"
    __table_args__ = (UniqueConstraint("episode_id"),)  # one escalation per episode

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("arrears_episodes.id"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(8), default="open")  # TASK_STATUSES
    assigned_to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    closed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_note: Mapped[str] = mapped_column(String(200), default="")


WRITE_OFF_STATUSES = ("pending", "posted", "rejected")


class WriteOff(Base):
    """Staff writing a debt off to the bad-debt account; above the estate's threshold a second
    staff member approves it before anything is posted."""

    __tablename__ = "write_offs"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # the pocket or the record's account
    record_id: Mapped[int | None] = mapped_column(ForeignKey("arrears_records.id"))
    amount: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(8), default="pending")  # WRITE_OFF_STATUSES
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    transaction_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_transactions.id"))
