"""Debt cohorts (A5, issue 16): each fiscal year's top debtors of an estate, and their monthly snapshots.

A cohort is taken once a year, on a configurable day after the estate's fiscal year starts; its
members stay the same for the year, and every month each member's balance, debt, consumption
and payments are snapshotted, so collection progress can be followed. Rows are keyed so that
a rerun updates in place: members by (fiscal year, estate, unit), snapshots by (month, estate,
unit). The figures are money in the estate's currency (units estates: valued at today's price).
"""
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

COHORT_RANKINGS = ("owed", "usage")
COHORT_SOURCES = ("ledger", "external")


class DebtCohort(Base):
    """One estate's cohort for one fiscal year (labelled by the year the fiscal year ends)."""

    __tablename__ = "debt_cohorts"
    __table_args__ = (UniqueConstraint("fiscal_year", "estate_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    fiscal_year: Mapped[int]  # FY2027 = the fiscal year that ends in 2027
    taken_on: Mapped[date]  # the local day the members were chosen as at
    ranked_by: Mapped[str] = mapped_column(String(8))  # "owed" or "usage"
    size: Mapped[int]  # how many were asked for (N)
    source: Mapped[str] = mapped_column(String(8), default="ledger")  # or "external"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CohortMember(Base):
    """A unit in a fiscal year's cohort, with what it owed and used when the cohort was taken."""

    __tablename__ = "cohort_members"
    __table_args__ = (UniqueConstraint("fiscal_year", "estate_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("debt_cohorts.id"), index=True)
    fiscal_year: Mapped[int]
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    rank: Mapped[int]  # 1 = the largest debtor (or user)
    owed: Mapped[Decimal]  # debt when taken
    usage: Mapped[Decimal]  # consumption over the year before, when taken


class CohortSnapshot(Base):
    """One member's figures for one month (the month's last moment, or now for the current month)."""

    __tablename__ = "cohort_snapshots"
    __table_args__ = (UniqueConstraint("month", "estate_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("debt_cohorts.id"), index=True)
    month: Mapped[date]  # the first day of the month
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    balance: Mapped[Decimal]  # net balance of the unit's pockets and arrears records (negative: owes)
    debt: Mapped[Decimal]  # what is owed (positive)
    consumption: Mapped[Decimal]  # billed in the month (usage and standing charges)
    payments: Mapped[Decimal]  # credited in the month
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
