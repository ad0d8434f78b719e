"""Demand management (U5): an estate's draw from its bulk electricity meter against a threshold.

Every five minutes (`demand_watch`) each estate with a demand threshold is checked:
- demand is the bulk electricity meters' latest interval (kWh over the hours since the reading
  before it), in kW;
- above the threshold a `DemandEvent` opens: the estate's utility users and staff are warned,
  and so are the tenants of the heaviest consumers; where the estate opts in
  (`demand_restrict`) and credit control is on, the heaviest consumers' electricity meters are
  held (relay holds of kind "demand", through the relay-command outbox) for the hold time, at
  most `demand_max_units` of them, heaviest first. Water is never cut and SparkMeter's meters
  take no commands: they are skipped;
- when demand has stayed below the restore threshold for `demand_restore_minutes`, the
  event's holds are released (supply returns where the balance allows) and the event ends.
  Holds also lapse by themselves at their `until` (the relay_holds job).
Every hold and release is audited with its reason by credit control.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import record
from app.estates.settings_catalog import setting_default
from app.models import ConsumptionRollup, Estate, Meter, Reading, Tenancy, Unit, User, utcnow
from app.models.metering import RelayHold
from app.models.utility import DemandEvent
from app.settings import get_setting

ORDERS = ("last_hour", "last_day")
KW = Decimal("0.001")


@dataclass(frozen=True)
class DemandSettings:
    threshold_kw: Decimal | None
    restore_kw: Decimal | None
    restore_minutes: int
    hold_minutes: int
    max_units: int
    restrict: bool
    order: str


def _setting(session: Session, key: str, estate_id: int):
    return get_setting(session, key, estate_id, default=setting_default(key))


def _decimal(value) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def demand_settings(session: Session, estate_id: int) -> DemandSettings:
    """The estate's demand settings, with the catalogue's defaults."""
    threshold = _decimal(_setting(session, "demand_threshold_kw", estate_id))
    restore = _decimal(_setting(session, "demand_restore_kw", estate_id))
    if threshold is not None and restore is None:
        restore = (threshold * Decimal("0.9")).quantize(KW)  # unset: 90 % of the threshold
    order = _setting(session, "demand_order", estate_id)
    return DemandSettings(threshold, restore, int(_setting(session, "demand_restore_minutes", estate_id)),
                          int(_setting(session, "demand_hold_minutes", estate_id)),
                          int(_setting(session, "demand_max_units", estate_id)),
                          bool(_setting(session, "demand_restrict", estate_id)),
                          order if order in ORDERS else ORDERS[0])


def current_demand(session: Session, estate_id: int, now: datetime | None = None) -> Decimal | None:
    """The bulk electricity meters' latest interval as kW, None without a recent reading."""
    now = now or utcnow()
    total = None
    for meter in session.scalars(select(Meter).where(
            Meter.estate_id == estate_id, Meter.role == "bulk", Meter.utility == "electricity",
            Meter.detached_at.is_(None))):
        last_two = session.execute(select(Reading.taken_at, Reading.consumption).where(
            Reading.meter_id == meter.id, Reading.taken_at <= now).order_by(Reading.taken_at.desc()).limit(2)).all()
        if len(last_two) < 2 or last_two[0].consumption is None:
            continue
        (latest, used), (before, _) = last_two
        hours = Decimal((latest - before).total_seconds()) / 3600
        interval = timedelta(minutes=meter.interval_minutes or 30)
        if hours <= 0 or now - latest > 2 * interval:
            continue  # a reading that old says nothing about the draw now
        total = (total or Decimal(0)) + Decimal(used) / hours
    return total.quantize(KW) if total is not None else None


def heaviest_meters(session: Session, estate_id: int, now: datetime, order: str) -> list[tuple[Meter, Decimal]]:
    """The estate's attached electricity unit meters by use over the last hour (or day), heaviest first."""
    since = now - (timedelta(hours=1) if order == "last_hour" else timedelta(days=1))
    used = func.coalesce(func.sum(ConsumptionRollup.consumption), 0)
    rows = session.execute(
        select(Meter, used).outerjoin(ConsumptionRollup, (ConsumptionRollup.meter_id == Meter.id)
                                      & (ConsumptionRollup.grain == "hour")
                                      & (ConsumptionRollup.period_start >= since - timedelta(hours=1)))
        .where(Meter.estate_id == estate_id, Meter.role == "unit", Meter.utility == "electricity",
               Meter.detached_at.is_(None))
        .group_by(Meter.id).order_by(used.desc(), Meter.id)).all()
    return [(meter, Decimal(total)) for meter, total in rows if Decimal(total) > 0]


def check_demand(session: Session, estate: Estate, *, now: datetime | None = None) -> DemandEvent | None:
    """Compare the estate's demand with its thresholds and act; the caller commits."""
    from app.analytics.losses import recipients
    from app.metering.credit_control import HoldRefused, place_hold, release_hold
    from app.notify import notify

    now = now or utcnow()
    settings = demand_settings(session, estate.id)
    event = session.scalar(select(DemandEvent).where(DemandEvent.estate_id == estate.id,
                                                     DemandEvent.ended_at.is_(None)))
    if settings.threshold_kw is None:
        return event
    kw = current_demand(session, estate.id, now)
    if kw is None:
        return event
    if kw > settings.threshold_kw:
        if event is not None:
            event.peak_kw = max(Decimal(event.peak_kw), kw)
            event.below_since = None
            return event
        event = DemandEvent(estate_id=estate.id, started_at=now, peak_kw=kw, threshold_kw=settings.threshold_kw,
                            state="warning", held_meter_ids=[])
        session.add(event)
        session.flush()
        record(session, "demand.over", event, new={"kw": str(kw), "threshold_kw": str(settings.threshold_kw)},
               estate_id=estate.id)
        for user in recipients(session, estate.id):
            notify(session, "utility_demand", {"estate": estate, "event": event, "heavy": False}, user=user)
        heavy = heaviest_meters(session, estate.id, now, settings.order)
        for user in _tenants(session, [m.unit_id for m, _ in heavy[:settings.max_units]], now):
            notify(session, "utility_demand", {"estate": estate, "event": event, "heavy": True}, user=user)
        if settings.restrict and estate.feature_enabled("credit_control"):
            held = []
            reason = f"demand {kw} kW above {settings.threshold_kw} kW"
            for meter, _ in heavy:
                if len(held) >= settings.max_units:
                    break
                try:
                    place_hold(session, meter, "demand", reason, until=now + timedelta(minutes=settings.hold_minutes))
                except HoldRefused:
                    continue  # SparkMeter's meters take no commands; water never reaches this list
                held.append(meter.id)
            event.held_meter_ids = held
            event.state = "restricted" if held else "warning"
        return event
    if event is None:
        return None
    if settings.restore_kw is not None and kw < settings.restore_kw:
        if event.below_since is None:
            event.below_since = now
        elif now - _aware(event.below_since) >= timedelta(minutes=settings.restore_minutes):
            for hold in session.scalars(select(RelayHold).where(
                    RelayHold.meter_id.in_(event.held_meter_ids or [-1]), RelayHold.kind == "demand",
                    RelayHold.released_at.is_(None))):
                release_hold(session, hold, reason=f"demand back to {kw} kW, under {settings.restore_kw} kW")
            event.state, event.ended_at = "restored", now
            record(session, "demand.restored", event, new={"kw": str(kw)}, estate_id=estate.id)
    else:
        event.below_since = None
    return event


def _aware(moment: datetime) -> datetime:
    from datetime import UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _tenants(session: Session, unit_ids: list[int], now: datetime) -> list[User]:
    """Users of the current tenants of these units."""
    if not unit_ids:
        return []
    return list(session.scalars(
        select(User).join(Tenancy, Tenancy.person_id == User.person_id)
        .where(Tenancy.unit_id.in_(unit_ids), Tenancy.move_in <= now.date(),
               (Tenancy.move_out.is_(None)) | (Tenancy.move_out > now.date())).distinct()))


def run_demand(session: Session, *, now: datetime | None = None) -> int:
    """Check every estate that has a demand threshold; commits once per estate."""
    checked = 0
    for estate in session.scalars(select(Estate).order_by(Estate.id)).all():
        if demand_settings(session, estate.id).threshold_kw is None:
            continue
        check_demand(session, estate, now=now)
        session.commit()
        checked += 1
    return checked


def recent_events(session: Session, estate_id: int, limit: int = 20) -> list[DemandEvent]:
    return list(session.scalars(select(DemandEvent).where(DemandEvent.estate_id == estate_id)
                                .order_by(DemandEvent.started_at.desc()).limit(limit)))


def demand_curve(session: Session, estate: Estate, days: int = 30, now: datetime | None = None) -> list[tuple[int, Decimal]]:
    """The bulk electricity meters' average kW by local hour of day over the last `days` days."""
    now = now or utcnow()
    ids = list(session.scalars(select(Meter.id).where(Meter.estate_id == estate.id, Meter.role == "bulk",
                                                      Meter.utility == "electricity")))
    hours = {h: [Decimal(0), set()] for h in range(24)}
    if ids:
        for start, consumption in session.execute(
                select(ConsumptionRollup.period_start, ConsumptionRollup.consumption)
                .where(ConsumptionRollup.grain == "hour", ConsumptionRollup.meter_id.in_(ids),
                       ConsumptionRollup.period_start >= now - timedelta(days=days))):
            local = _aware(start).astimezone(estate.tz)
            hours[local.hour][0] += Decimal(consumption)
            hours[local.hour][1].add(local.date())
    # kWh in an hour is the average kW over it; averaged over the days that hour had readings.
    return [(h, (total / len(seen)).quantize(Decimal("0.01")) if seen else Decimal(0))
            for h, (total, seen) in hours.items()]
