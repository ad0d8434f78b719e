"""The utility layer's stored figures (U1, U2, U4, U5): daily losses, meter anomaly scores,
revenue-assurance cases, demand events and carbon emission factors.

Each row is written by a daily (or five-minutely, for demand) job so the utility pages read
summaries, never raw readings.
"""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

CASE_STATUSES = ("open", "investigating", "resolved")
DEMAND_STATES = ("warning", "restricted", "restored")


class LossDay(Base):
    """One local day's bulk meter total against the sum of its unit meters, per utility."""

    __tablename__ = "loss_days"
    __table_args__ = (UniqueConstraint("estate_id", "utility", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    utility: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)  # the estate's local day
    bulk: Mapped[Decimal] = mapped_column(Numeric(18, 3), default=Decimal("0"))
    units: Mapped[Decimal] = mapped_column(Numeric(18, 3), default=Decimal("0"))
    # False when a bulk or unit meter live that day sent no readings: its loss is not reported.
    complete: Mapped[bool] = mapped_column(default=True)
    missing_meters: Mapped[int] = mapped_column(default=0)
    loss_percent: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    threshold: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("15"))
    over_threshold: Mapped[bool] = mapped_column(default=False)
    alerted: Mapped[bool] = mapped_column(default=False)  # the first day of an episode is alerted
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class MeterAnomaly(Base):
    """A unit meter's anomaly score (0-100) on a local day, with the parts that make it up."""

    __tablename__ = "meter_anomalies"
    __table_args__ = (UniqueConstraint("meter_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    day: Mapped[date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(default=0)
    consumption: Mapped[Decimal] = mapped_column(Numeric(18, 3), default=Decimal("0"))
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{rule, points, why}]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RevenueCase(Base):
    """An investigation of a meter whose anomaly score crossed the line (U4)."""

    __tablename__ = "revenue_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    opened_on: Mapped[date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(default=0)
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class DemandEvent(Base):
    """An estate's demand above its threshold: the warning, the holds placed, the restoration."""

    __tablename__ = "demand_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    started_at: Mapped[datetime]
    peak_kw: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    threshold_kw: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    state: Mapped[str] = mapped_column(String(16), default="warning")
    held_meter_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    below_since: Mapped[datetime | None]  # demand back under the restore threshold since then
    ended_at: Mapped[datetime | None]


class EmissionFactor(Base):
    """kg CO2e per kWh (or kL) of a utility in a country, from a date (staff edit them)."""

    __tablename__ = "emission_factors"
    __table_args__ = (UniqueConstraint("country", "utility", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    utility: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date] = mapped_column(Date)
    kg_per_unit: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    source: Mapped[str] = mapped_column(String(200), default="")


# --- shared solar (Quantify 11.2) -----------------------------------------------------------
SOLAR_METHODS = ("equal", "floor_area", "custom")
SOLAR_ALLOCATION_STATUSES = ("posted", "reversed")


class SolarScheme(Base):
    """How an estate shares its solar generation among its units (one per estate)."""

    __tablename__ = "solar_schemes"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), unique=True)
    method: Mapped[str] = mapped_column(String(12), default="equal")  # SOLAR_METHODS
    custom_weights: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # unit id -> weight ("custom")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SolarAllocation(Base):
    """One unit's share of a month's solar generation and the ledger transaction that priced it."""

    __tablename__ = "solar_allocations"
    __table_args__ = (UniqueConstraint("estate_id", "period", "run", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM, local
    run: Mapped[int] = mapped_column(default=1)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    method: Mapped[str] = mapped_column(String(12))
    weight: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    generation: Mapped[Decimal] = mapped_column(Numeric(18, 3))  # the estate's month, kWh
    used: Mapped[Decimal] = mapped_column(Numeric(18, 3))  # the unit's metered electricity, kWh
    kwh: Mapped[Decimal] = mapped_column(Numeric(18, 3))  # its share
    solar_rate: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    grid_rate: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    solar_amount: Mapped[Decimal] = mapped_column(Numeric(20, 6))  # share of the solar value (exact split)
    grid_credit: Mapped[Decimal] = mapped_column(Numeric(20, 6))  # the grid charge those kWh had paid
    transaction_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                                       ForeignKey("ledger_transactions.id"))
    status: Mapped[str] = mapped_column(String(10), default="posted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
