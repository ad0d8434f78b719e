"""Estates, their units, occupancy history, financial periods and settings."""
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

if TYPE_CHECKING:
    from app.models.meter import Meter
    from app.models.tariff import TariffClass

WALLET_DENOMINATIONS = ("currency", "units")
OCCUPANCY_STATUSES = ("occupied", "vacant", "maintenance")
PERIOD_STATUSES = ("open", "closed", "locked")

# X3: per-estate feature flags and their defaults.
FEATURE_DEFAULTS: dict[str, bool] = {
    "credit_control": False,
    "statements": True,
    "levies_auto_deduct": False,
}
# The flags some code reads. Only these are shown and can be toggled: a switch with no
# feature behind it would promise something that does not happen.
LIVE_FEATURES: tuple[str, ...] = ("credit_control", "statements", "levies_auto_deduct")


class Estate(Base):
    __tablename__ = "estates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166 alpha-2
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217
    currency_minor_units: Mapped[int] = mapped_column(default=2)
    timezone: Mapped[str] = mapped_column(String(64), default="Africa/Johannesburg")
    fiscal_year_start_month: Mapped[int] = mapped_column(default=3)
    wallet_denomination: Mapped[str] = mapped_column(String(16), default="currency")
    minimum_activation_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    units: Mapped[list["Unit"]] = relationship(back_populates="estate", order_by="Unit.number")
    tariff_classes: Mapped[list["TariffClass"]] = relationship(  # app/models/tariff.py
        back_populates="estate", order_by="(TariffClass.is_default.desc(), TariffClass.name)")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def feature_enabled(self, name: str) -> bool:
        """Return whether a feature flag is on for this estate (X3)."""
        if name not in FEATURE_DEFAULTS:
            raise KeyError(f"unknown feature flag {name!r}")
        return bool((self.features or {}).get(name, FEATURE_DEFAULTS[name]))

    def __repr__(self) -> str:
        return f"<Estate {self.code}>"


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("estate_id", "number"), UniqueConstraint("estate_id", "account_sequence"))

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    floor_area_m2: Mapped[Decimal | None]
    occupancy_status: Mapped[str] = mapped_column(String(16), default="vacant")
    address: Mapped[str | None] = mapped_column(Text)
    # GPS position in decimal degrees (WGS 84), both or neither (app/estates/units.py checks).
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    # What payers quote (SMS, EFT): unique across estates; made from the estate's pattern
    # (app/estates/account_numbers.py). NULL for units made before account numbers existed.
    account_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    account_sequence: Mapped[int | None]  # the pattern's {seq} the number was made from
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # None: the estate's default tariff class (app/models/tariff.py).
    tariff_class_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_classes.id"), index=True)

    estate: Mapped[Estate] = relationship(back_populates="units")
    tariff_class: Mapped["TariffClass | None"] = relationship()
    meters: Mapped[list["Meter"]] = relationship(back_populates="unit", order_by="Meter.utility")
    occupancy_history: Mapped[list["OccupancyChange"]] = relationship(
        back_populates="unit", order_by="OccupancyChange.changed_at"
    )

    def __repr__(self) -> str:
        return f"<Unit {self.estate_id}/{self.number}>"


class OccupancyChange(Base):
    """One row per change of a unit's occupancy status (O4 history)."""

    __tablename__ = "occupancy_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship(back_populates="occupancy_history")


class FinancialPeriod(Base):
    """An estate's month: open, closed (adjustments only) or locked (nothing posts; C8)."""

    __tablename__ = "financial_periods"
    __table_args__ = (UniqueConstraint("estate_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the estate's timezone
    status: Mapped[str] = mapped_column(String(8), default="open")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Setting(Base):
    """A named setting, global (estate_id NULL) or per estate."""

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("estate_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"))
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JSON)
