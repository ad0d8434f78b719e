"""Metering tables: tariff versions, roll-ups, dead letters, meter alerts, relay commands and holds."""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

TARIFF_KINDS = ("flat", "block", "tou")
ROLLUP_GRAINS = ("hour", "day", "month")
ALERT_KINDS = ("tamper", "spike", "gap", "frozen", "rollover", "water_credit_limit", "relay_no_ack",
               "no_tariff")
RELAY_COMMAND_STATUSES = ("pending", "published", "acknowledged", "timed_out")


class TariffVersion(Base):
    """An estate's price for one utility from a local date on (C5); the latest effective wins.

    `rates` by kind: flat {"rate": "2.85"}; block {"blocks": [{"up_to": "50", "rate": "1.5"},
    {"up_to": null, "rate": "2.5"}]} (per month); tou {"default_rate": "2.5", "windows":
    [{"start": "22:00", "end": "06:00", "rate": "1.2"}]} (local time, may cross midnight).
    Each version belongs to a tariff class (None: the estate's default class): a unit is billed
    under its class's versions (app/billing/tariffs.py `prices_for`).
    `solar_rate` is the feed-in rate credited per unit a net-metered meter exports (C5).
    A version is billed by its date alone; `activated_at` and `notice_sent_at` record that the
    schedule job announced it N days ahead and switched it on (app/billing/schedule.py).
    """

    __tablename__ = "tariff_versions"
    # One version per class, utility and date; NULL is the estate's default class, kept
    # unique by the partial index (NULLs are distinct in a unique constraint).
    __table_args__ = (
        UniqueConstraint("tariff_class_id", "utility", "effective_from",
                         name="uq_tariff_versions_tariff_class_id_utility_effective_from"),
        Index("ix_tariff_versions_default_class_day", "estate_id", "utility", "effective_from", unique=True,
              postgresql_where=text("tariff_class_id IS NULL"), sqlite_where=text("tariff_class_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    # None: the estate's default class (app/models/tariff.py); versions are per class.
    tariff_class_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_classes.id"))
    utility: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date]  # local date in the estate's timezone
    kind: Mapped[str] = mapped_column(String(8), default="flat")
    rates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    standing_charge: Mapped[Decimal] = mapped_column(default=Decimal("0"))  # per month
    solar_rate: Mapped[Decimal | None]  # per kWh exported by net-metered meters
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notice_sent_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None]

    tariff_class: Mapped["TariffClass | None"] = relationship()  # noqa: F821


class ConsumptionRollup(Base):
    """Consumption per meter per local hour, day or month, kept up to date on ingest (M5)."""

    __tablename__ = "consumption_rollups"
    __table_args__ = (UniqueConstraint("meter_id", "grain", "period_start"),
                      Index("ix_consumption_rollups_month_period_start", "period_start", "meter_id",
                            postgresql_where=text("grain = 'month'"), sqlite_where=text("grain = 'month'")))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    grain: Mapped[str] = mapped_column(String(5))
    period_start: Mapped[datetime]  # the local hour/day/month start, stored in UTC
    consumption: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    readings: Mapped[int] = mapped_column(default=0)


class DeadLetter(Base):
    """A message the pipeline refused, kept whole with the reason so staff can replay it (M3)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(300))
    payload: Mapped[str] = mapped_column(Text)  # readable copy: undecodable bytes replaced, NUL removed
    raw_payload: Mapped[bytes | None] = mapped_column(LargeBinary)  # exactly as received (None: older rows)
    reason: Mapped[str] = mapped_column(String(500))
    meter_serial: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    replayed_at: Mapped[datetime | None]
    replay_outcome: Mapped[str | None] = mapped_column(String(500))
    # The reading's own time where the message could be decoded that far: an open dead letter
    # holds back the archive of its month (M8) until it is replayed or dismissed.
    reading_at: Mapped[datetime | None] = mapped_column(index=True)
    dismissed_at: Mapped[datetime | None]
    dismissed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def open(self) -> bool:
        return self.replayed_at is None and self.dismissed_at is None


class ReadingArchive(Base):
    """A month of readings moved out of the database into a Parquet file (M8).

    The row outlives the partition: explanations name the file, ingest refuses late readings
    for the month, and `flask readings restore` checks the file against `sha256` and the
    manifest before bringing the month back (then `restored_at` is set).
    """

    __tablename__ = "reading_archives"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(unique=True)  # the first day of the UTC month
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict] = mapped_column(JSON)
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[datetime | None]

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class MeterAlert(Base):
    """A flag raised on a meter: tamper, spike, gap, water over its credit limit, silent relay."""

    __tablename__ = "meter_alerts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str] = mapped_column(String(500), default="")
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class RelayCommand(Base):
    """A relay command (C7): written with the balance change, published after commit, acked later."""

    __tablename__ = "relay_commands"
    __table_args__ = (Index("ix_relay_commands_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[str] = mapped_column(String(64), unique=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    state: Mapped[str] = mapped_column(String(4))  # "on" | "off"
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    ack_payload: Mapped[str | None] = mapped_column(Text)


HOLD_KINDS = ("arrears", "spend_limit", "demand", "manual")


class RelayHold(Base):
    """A deliberate cut of a meter's supply (C7): a suspension for arrears, a spend limit,
    demand management or a staff decision. While a hold is active credit control never switches
    the meter back on, whatever the balance (`app.metering.credit_control`). One active hold per
    meter and kind; `until` lets a hold lapse by itself (a daily spend limit, a demand hold time).
    """

    __tablename__ = "relay_holds"
    __table_args__ = (Index("uq_relay_holds_active", "meter_id", "kind", unique=True,
                            postgresql_where=text("released_at IS NULL"),
                            sqlite_where=text("released_at IS NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # HOLD_KINDS
    reason: Mapped[str] = mapped_column(String(200))
    set_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: a job
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime | None]  # None: until released
    released_at: Mapped[datetime | None]
    released_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    release_reason: Mapped[str] = mapped_column(String(200), default="")

    def active_at(self, moment: datetime) -> bool:
        return self.released_at is None and (self.until is None or self.until > moment)


# The readings keys became the integration API's one key model (app/models/api.py); the old
# name stays for the code and tests that still say it.
from app.models.api import ApiKey as IngestApiKey  # noqa: E402
