"""Meters and their raw register readings."""
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

if TYPE_CHECKING:
    from app.models.estate import Unit

UTILITIES = ("electricity", "water", "hot_water", "solar")
METER_ROLES = ("unit", "bulk", "solar")
PROTOCOLS = ("chirpstack", "mqtt_direct", "http", "modbus", "sparkmeter")
RELAY_STATES = ("on", "off", "unknown")


def canonical_serial(raw: str) -> str:
    """Map a meter id as a source sends it ('000023022673', ' 23022673') to one form."""
    text = str(raw).strip().upper()
    stripped = text.lstrip("0")
    return stripped or "0"


class Meter(Base):
    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)  # canonical_serial()
    utility: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(8), default="unit")
    protocol: Mapped[str] = mapped_column(String(16), default="mqtt_direct")
    dev_eui: Mapped[str | None] = mapped_column(String(32), unique=True)
    relay_state: Mapped[str] = mapped_column(String(8), default="unknown")
    interval_minutes: Mapped[int | None]  # None: readings at any time are accepted
    register_digits: Mapped[int | None]  # whole digits before the register wraps; None: inferred
    bidirectional: Mapped[bool] = mapped_column(default=False)  # net-metered: may export (solar)
    # Stamps its readings on the interval's boundaries (:00 and :30 for half-hourly), as the
    # PowerCMS-style HTTP meters do; those readings off a boundary are refused. Other meters
    # (LoRaWAN devices on free-running timers) are accepted at their own time. Unset, it is true
    # except for ChirpStack meters (see __init__).
    reports_on_boundaries: Mapped[bool] = mapped_column(default=True, server_default=true())
    last_reading_at: Mapped[datetime | None]
    last_register: Mapped[Decimal | None]
    # The meter's billing start once a history-only ingest (a vendor backfill before go-live,
    # `app.metering.ingest.ingest(..., history_only=True)`) stored readings before it: readings
    # stamped earlier are history, in the roll-ups but never billed. None: no history stored.
    history_before: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Replacement (X6): the old meter keeps its unit (its readings and charges stay the unit's
    # history and explanations still find it) but is detached: credit control no longer
    # commands it and ingest refuses its readings. Billing continues on the meter that
    # replaced it (standing charge and block position carry across: app.billing.consumption).
    detached_at: Mapped[datetime | None]  # the closing reading's time; None: attached
    replaced_by_meter_id: Mapped[int | None] = mapped_column(ForeignKey("meters.id"), index=True)

    unit: Mapped["Unit | None"] = relationship(back_populates="meters")

    @property
    def attached(self) -> bool:
        return self.detached_at is None

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("reports_on_boundaries", kwargs.get("protocol") != "chirpstack")
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"<Meter {self.serial} {self.utility}>"


class Reading(Base):
    """A register value at a moment; unique per meter and timestamp (the replay guard).

    On PostgreSQL the table is partitioned by month of `taken_at` (M8, migration 0027): every
    unique key includes `taken_at`, and whole months go to Parquet files and back
    (`app.metering.archive`). The ORM keeps `id` as its identity; the database's key is
    (id, taken_at).
    """

    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("meter_id", "taken_at"),
                      UniqueConstraint("meter_id", "uplink_id", "taken_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    taken_at: Mapped[datetime]
    register: Mapped[Decimal]
    consumption: Mapped[Decimal | None]  # since the previous reading, in the utility's unit
    received_at: Mapped[datetime] = mapped_column(default=utcnow)  # when ingest stored it
    uplink_id: Mapped[str | None] = mapped_column(String(64))  # ChirpStack's deduplicationId
