"""Figures the daily utility job stores so the utility pages read small tables (issue 19, speed).

- `ProfileRun`: one estate's consumption profiles of one utility over one trailing window
  (7, 30 or 90 complete local days): which days, how many weekdays and weekend days, when.
- `MeterProfile`: a unit meter's use in that window per local hour of day (0-23, the estate's
  zone, DST included) and day type (weekday or weekend), summed from the hour roll-ups. Hours
  without use are not stored. The run keeps the page's per-unit summary of the same sums.
"""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class ProfileRun(Base):
    __tablename__ = "profile_runs"
    __table_args__ = (UniqueConstraint("estate_id", "utility", "window_days"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    utility: Mapped[str] = mapped_column(String(16))
    window_days: Mapped[int] = mapped_column(SmallInteger)
    first_day: Mapped[date] = mapped_column(Date)  # local days, inclusive
    last_day: Mapped[date] = mapped_column(Date)
    weekdays: Mapped[int] = mapped_column(SmallInteger)
    weekend_days: Mapped[int] = mapped_column(SmallInteger)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What the page shows, from the same sums: {"units": {unit id: [use, weekend use, peak hour]},
    # "curve": [use in local hour 0..23]} (decimals as strings); None: read the meter rows.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class MeterProfile(Base):
    __tablename__ = "meter_profiles"
    __table_args__ = (UniqueConstraint("run_id", "meter_id", "local_hour", "weekend"),
                      Index("ix_meter_profiles_meter_id", "meter_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("profile_runs.id", ondelete="CASCADE"))
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    local_hour: Mapped[int] = mapped_column(SmallInteger)
    weekend: Mapped[bool]
    energy: Mapped[Decimal]
