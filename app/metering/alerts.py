"""Meter alerts: the open-alert list, acknowledging one (audited), and the frozen-register scan.

Ingest raises tamper, spike and gap alerts as readings arrive; a frozen register is the
absence of change, so it is found by a periodic scan (job `meter_watch`, hourly from
workers/cron.py): a meter in an occupied unit whose register has not moved for
`validation.FROZEN_INTERVALS` intervals gets one alert, and no second one while that
alert is still open.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.jobs import job
from app.metering import MeteringError, validation
from app.models import Estate, Meter, Reading, Unit, utcnow
from app.models.metering import MeterAlert


class AlertError(MeteringError):
    """The alert cannot be acknowledged as asked."""


def open_alerts(session: Session, limit: int = 300) -> list[tuple[MeterAlert, Meter, str, str | None]]:
    """Unacknowledged alerts, newest first, with meter, estate code and unit number."""
    return list(session.execute(
        select(MeterAlert, Meter, Estate.code, Unit.number).join(Meter, Meter.id == MeterAlert.meter_id)
        .join(Estate, Estate.id == Meter.estate_id).outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(MeterAlert.acknowledged_at.is_(None)).order_by(MeterAlert.id.desc()).limit(limit)).all())


def meter_alerts(session: Session, meter_id: int, limit: int = 100) -> list[MeterAlert]:
    """A meter's alerts, newest first, acknowledged or not."""
    return list(session.scalars(select(MeterAlert).where(MeterAlert.meter_id == meter_id)
                                .order_by(MeterAlert.id.desc()).limit(limit)))


def acknowledge(session: Session, alert_id: int, user_id: int | None) -> MeterAlert:
    """Mark an alert as seen and handled by a staff member; audit and commit."""
    alert = session.get(MeterAlert, alert_id)
    if alert is None:
        raise AlertError(f"There is no alert #{alert_id}.")
    if alert.acknowledged_at is not None:
        raise AlertError(f"Alert #{alert_id} was already acknowledged.")
    alert.acknowledged_at, alert.acknowledged_by_user_id = utcnow(), user_id
    meter = session.get(Meter, alert.meter_id)
    audit.record(session, "meter_alert.acknowledge", alert, estate_id=meter.estate_id,
                 old={"acknowledged_at": None},
                 new={"kind": alert.kind, "meter": meter.serial, "acknowledged_at": alert.acknowledged_at})
    session.commit()
    return alert


def flag_frozen_registers(session: Session, now: datetime | None = None,
                          intervals: int = validation.FROZEN_INTERVALS) -> int:
    """Alert on occupied units' meters whose register stood still for `intervals` intervals."""
    now = now or utcnow()
    meters = session.scalars(select(Meter).join(Unit, Unit.id == Meter.unit_id).where(
        Unit.occupancy_status == "occupied", Meter.role == "unit", Meter.last_reading_at.is_not(None),
        Meter.detached_at.is_(None))).all()
    already = set(session.scalars(select(MeterAlert.meter_id).where(
        MeterAlert.kind == "frozen", MeterAlert.acknowledged_at.is_(None))))
    raised = 0
    for meter in meters:
        step = timedelta(minutes=meter.interval_minutes or 60)
        if meter.id in already or meter.last_reading_at < now - step * (intervals + 3):
            continue  # already flagged, or silent (offline is the gap alert's business)
        recent = session.execute(select(Reading.taken_at, Reading.register).where(
            Reading.meter_id == meter.id, Reading.taken_at >= meter.last_reading_at - step * (intervals + 1))
            .order_by(Reading.taken_at.desc())).all()
        detail = validation.frozen_flag([tuple(row) for row in recent], meter.interval_minutes, intervals)
        if detail:
            session.add(MeterAlert(meter_id=meter.id, kind="frozen", detail=detail[:500], raised_at=now))
            raised += 1
    session.commit()
    return raised


@job("meter_watch")
def meter_watch(session: Session, progress) -> str:
    """Scan for frozen registers on occupied units."""
    raised = flag_frozen_registers(session)
    return f"{raised} frozen register{'s' if raised != 1 else ''} flagged"
