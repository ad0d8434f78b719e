"""Meter-data queries (M6) and the staff overviews: periods, meter status, dead letters, commands,
and one meter's own readings, commands and dead letters for its detail page."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.models import Estate, Meter, Reading, Unit, utcnow
from app.models.metering import DeadLetter, RelayCommand
from app.periods import local_month_bounds, shift_month

PERIODS = ("last_30_minutes", "today", "this_week", "this_month", "last_month")
PERIOD_LABELS = {"last_30_minutes": "Last 30 minutes", "today": "Today", "this_week": "This week",
                 "this_month": "This month", "last_month": "Last month"}
# When a meter counts as offline: the one rule every page showing online/offline uses.
OFFLINE_AFTER = timedelta(hours=2)  # or three missed intervals, whichever is longer
# Meters whose readings arrive by a daily vendor import (Koios, once a night for the day before)
# hold readings up to ~36 h old just before the next import; two days without one is a real gap.
IMPORTED_PROTOCOLS = ("sparkmeter",)
IMPORTED_OFFLINE_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class PeriodConsumption:
    """First and last reading inside a period and the consumption between them."""

    period: str
    start: datetime
    end: datetime
    first_at: datetime | None
    first_register: Decimal | None
    last_at: datetime | None
    last_register: Decimal | None

    @property
    def label(self) -> str:
        return PERIOD_LABELS[self.period]

    @property
    def consumption(self) -> Decimal | None:
        if self.first_register is None or self.last_register is None:
            return None
        return self.last_register - self.first_register


def period_bounds(period: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A named period's [start, end) in UTC, with days, weeks and months in the estate's timezone."""
    local = now.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    month_start, _ = local_month_bounds(local.year, local.month, tz)
    if period == "last_30_minutes":
        return now - timedelta(minutes=30), now
    if period == "today":
        return midnight.astimezone(UTC), now
    if period == "this_week":  # weeks start on Monday
        start = datetime.combine(local.date() - timedelta(days=local.weekday()), datetime.min.time(), tz)
        return start.astimezone(UTC), now
    if period == "this_month":
        return month_start, now
    if period == "last_month":
        return local_month_bounds(*shift_month(local.year, local.month, -1), tz)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}")


def consumption_in(session: Session, meter: Meter, period: str, now: datetime | None = None) -> PeriodConsumption:
    """First and last reading of a meter inside one named period (M6)."""
    estate = session.get(Estate, meter.estate_id)
    start, end = period_bounds(period, now or utcnow(), estate.tz)
    inside = select(Reading.taken_at, Reading.register).where(
        Reading.meter_id == meter.id, Reading.taken_at >= start, Reading.taken_at < end)
    first = session.execute(inside.order_by(Reading.taken_at).limit(1)).first()
    last = session.execute(inside.order_by(Reading.taken_at.desc()).limit(1)).first()
    return PeriodConsumption(period, start, end, first[0] if first else None, first[1] if first else None,
                             last[0] if last else None, last[1] if last else None)


def meter_periods(session: Session, meter: Meter, now: datetime | None = None) -> list[PeriodConsumption]:
    """Every M6 period for one meter."""
    return [consumption_in(session, meter, period, now) for period in PERIODS]


def offline_after(protocol: str | None, interval_minutes: int | None) -> timedelta:
    """How long a meter of this protocol and interval may go without a reading and stay online."""
    if protocol in IMPORTED_PROTOCOLS:
        return IMPORTED_OFFLINE_AFTER
    return max(OFFLINE_AFTER, timedelta(minutes=3 * (interval_minutes or 0)))


def reading_is_recent(last_reading_at: datetime | None, protocol: str | None, interval_minutes: int | None,
                      now: datetime) -> bool:
    """Online: a last reading no older than the meter's protocol and interval allow."""
    return last_reading_at is not None and now - last_reading_at <= offline_after(protocol, interval_minutes)


def is_imported(protocol: str | None) -> bool:
    """Whether a vendor's daily import feeds the meter (SparkMeter via Koios or ThunderCloud)."""
    return protocol in IMPORTED_PROTOCOLS


def feed_status(last_reading_at: datetime | None, protocol: str | None, interval_minutes: int | None,
                now: datetime) -> str:
    """What a page may say about a meter's feed: online or offline for live meters; imported, or
    import_overdue, for vendor-fed ones — a day-old import says nothing about being online now."""
    recent = reading_is_recent(last_reading_at, protocol, interval_minutes, now)
    if is_imported(protocol):
        return "imported" if recent else "import_overdue"
    return "online" if recent else "offline"


def is_online(meter: Meter, now: datetime) -> bool:
    """A live meter is online when its last reading is recent for its protocol and interval;
    a vendor-fed meter never is (see feed_status)."""
    return feed_status(meter.last_reading_at, meter.protocol, meter.interval_minutes, now) == "online"


def last_imports(session: Session, meter_ids: list[int]) -> dict[int, datetime]:
    """When each vendor-fed meter's readings last arrived (its last import), by meter id."""
    if not meter_ids:
        return {}
    return dict(session.execute(select(Reading.meter_id, func.max(Reading.received_at))
                                .where(Reading.meter_id.in_(meter_ids)).group_by(Reading.meter_id)).all())


def imported_meter_count(session: Session, estate_id: int) -> int:
    """How many of an estate's meters a vendor import feeds (never counted online)."""
    return session.scalar(select(func.count(Meter.id)).where(
        Meter.estate_id == estate_id, Meter.protocol.in_(IMPORTED_PROTOCOLS))) or 0


def online_meter_count(session: Session, estate_id: int, now: datetime | None = None) -> int:
    """How many of an estate's live meters are online, by is_online's rule, counted in SQL."""
    now = now or utcnow()
    kinds = session.execute(select(Meter.protocol, Meter.interval_minutes).where(
        Meter.estate_id == estate_id, Meter.protocol.not_in(IMPORTED_PROTOCOLS)).distinct()).all()
    if not kinds:
        return 0
    # One cutoff per (protocol, interval) the estate has: portable, no interval arithmetic in SQL.
    recent = or_(*(and_(Meter.protocol == protocol,
                        Meter.interval_minutes.is_(None) if interval is None else Meter.interval_minutes == interval,
                        Meter.last_reading_at >= now - offline_after(protocol, interval))
                   for protocol, interval in kinds))
    return session.scalar(select(func.count(Meter.id)).where(Meter.estate_id == estate_id, recent)) or 0


@dataclass(frozen=True)
class MeterRow:
    meter: Meter
    estate_code: str
    unit_number: str | None
    status: str  # feed_status: online, offline, imported, import_overdue
    last_import_at: datetime | None = None

    @property
    def online(self) -> bool:
        return self.status == "online"

    @property
    def stale(self) -> bool:
        """Offline, or a vendor import overdue: what "only offline meters" lists."""
        return self.status in ("offline", "import_overdue")


def meter_rows(session: Session, estate_ids: list[int], now: datetime | None = None,
               only_offline: bool = False) -> list[MeterRow]:
    """Meters of the estates with their last reading and online state, stalest first."""
    now = now or utcnow()
    rows = session.execute(
        select(Meter, Estate.code, Unit.number).join(Estate, Estate.id == Meter.estate_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id).where(Meter.estate_id.in_(estate_ids))
        .order_by(Meter.last_reading_at.asc().nulls_first(), Meter.serial)).all()
    imports = last_imports(session, [meter.id for meter, _, _ in rows if is_imported(meter.protocol)])
    result = [MeterRow(meter, code, number,
                       feed_status(meter.last_reading_at, meter.protocol, meter.interval_minutes, now),
                       imports.get(meter.id)) for meter, code, number in rows]
    return [row for row in result if row.stale] if only_offline else result


def dead_letters(session: Session, limit: int = 200, unreplayed_only: bool = False) -> list[DeadLetter]:
    """The newest dead letters."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if unreplayed_only:
        query = query.where(DeadLetter.replayed_at.is_(None), DeadLetter.dismissed_at.is_(None))
    return list(session.scalars(query))


def dead_letter_count(session: Session) -> int:
    """Dead letters nobody replayed or dismissed yet."""
    return session.scalar(select(func.count(DeadLetter.id)).where(
        DeadLetter.replayed_at.is_(None), DeadLetter.dismissed_at.is_(None))) or 0


def relay_commands(session: Session, estate_ids: list[int], limit: int = 200) -> list[tuple[RelayCommand, Meter]]:
    """The newest relay commands on the estates' meters, with their meter."""
    return list(session.execute(
        select(RelayCommand, Meter).join(Meter, Meter.id == RelayCommand.meter_id)
        .where(Meter.estate_id.in_(estate_ids)).order_by(RelayCommand.id.desc()).limit(limit)).all())


def meter_commands(session: Session, meter_id: int, limit: int = 50) -> list[RelayCommand]:
    """One meter's newest relay commands."""
    return list(session.scalars(select(RelayCommand).where(RelayCommand.meter_id == meter_id)
                                .order_by(RelayCommand.id.desc()).limit(limit)))


def meter_dead_letters(session: Session, meter: Meter, limit: int = 50) -> list[DeadLetter]:
    """One meter's newest dead letters (matched by its canonical serial)."""
    return list(session.scalars(select(DeadLetter).where(DeadLetter.meter_serial == meter.serial)
                                .order_by(DeadLetter.id.desc()).limit(limit)))


def recent_readings(session: Session, meter_id: int, limit: int = 20) -> list[Reading]:
    """One meter's newest stored readings."""
    return list(session.scalars(select(Reading).where(Reading.meter_id == meter_id)
                                .order_by(Reading.taken_at.desc()).limit(limit)))
