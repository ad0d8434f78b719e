"""Estate administration writes: occupancy, financial periods, settings. Each is audited."""
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models import Estate, FinancialPeriod, OccupancyChange, Setting, Unit
from app.models.estate import OCCUPANCY_STATUSES, PERIOD_STATUSES

PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# A period only moves forward: open -> closed -> locked (locked is final, also in the database).
PERIOD_ORDER = {status: rank for rank, status in enumerate(PERIOD_STATUSES)}


class EstateRuleError(ValueError):
    """A change the rules refuse; the message says why."""


def set_occupancy(session: Session, unit: Unit, status: str, user_id: int | None = None) -> bool:
    """Change a unit's occupancy status, keeping history; returns False when nothing changed."""
    if status not in OCCUPANCY_STATUSES:
        raise EstateRuleError(f"occupancy must be one of {', '.join(OCCUPANCY_STATUSES)}")
    if unit.occupancy_status == status:
        return False
    audit.record(session, "unit.occupancy", unit, old={"status": unit.occupancy_status},
                 new={"status": status})
    unit.occupancy_status = status
    session.add(OccupancyChange(unit_id=unit.id, status=status, changed_by_user_id=user_id))
    return True


def set_period_status(session: Session, estate: Estate, period: str, status: str) -> FinancialPeriod:
    """Close or lock an estate's month (C8); a period never moves back; commits once."""
    if not PERIOD_PATTERN.match(period):
        raise EstateRuleError("a period is written YYYY-MM")
    if status not in PERIOD_STATUSES:
        raise EstateRuleError(f"status must be one of {', '.join(PERIOD_STATUSES)}")
    row = session.scalar(select(FinancialPeriod).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period == period))
    current = row.status if row else "open"
    if PERIOD_ORDER[status] < PERIOD_ORDER[current]:
        raise EstateRuleError(f"{period} is {current}; it cannot go back to {status}")
    if row is None:
        row = FinancialPeriod(estate_id=estate.id, period=period, status=status)
        session.add(row)
    elif current != status:
        row.status = status
    session.flush()
    audit.record(session, "period.status", row, old={"status": current}, new={"status": status},
                 estate_id=estate.id)
    session.commit()
    return row


def set_estate_feature(session: Session, estate: Estate, name: str, wanted: bool) -> bool:
    """Switch one of the estate's feature flags, audited; returns False when nothing changed; commits once."""
    before = estate.feature_enabled(name)
    if before == wanted:
        return False
    estate.features = {**(estate.features or {}), name: wanted}
    audit.record(session, "estate.feature", estate, old={name: before}, new={name: wanted}, estate_id=estate.id)
    session.commit()
    return True


def recent_periods(session: Session, estate: Estate, months: int = 6) -> list[tuple[str, str]]:
    """The estate's last `months` periods (newest first) with their status."""
    from app.models import utcnow

    today = utcnow().astimezone(estate.tz)
    year, month = today.year, today.month
    names = []
    for _ in range(months):
        names.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    stored = dict(session.execute(select(FinancialPeriod.period, FinancialPeriod.status).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period.in_(names))).all())
    return [(name, stored.get(name, "open")) for name in names]


def get_setting(session: Session, key: str, estate_id: int | None = None, default: Any = None) -> Any:
    """Return a setting: the estate's own value, else the global one, else `default`."""
    rows = session.scalars(select(Setting).where(
        Setting.key == key, (Setting.estate_id == estate_id) | Setting.estate_id.is_(None)))
    values = {row.estate_id: row.value for row in rows}
    if estate_id in values:
        return values[estate_id]
    return values.get(None, default)


def put_setting(session: Session, key: str, value: Any, estate_id: int | None = None) -> None:
    """Store a setting globally (estate_id None) or for one estate."""
    row = session.scalar(select(Setting).where(Setting.key == key, Setting.estate_id.is_(estate_id)
                                               if estate_id is None else Setting.estate_id == estate_id))
    old = row.value if row else None
    if row is None:
        session.add(Setting(key=key, value=value, estate_id=estate_id))
    else:
        row.value = value
    audit.record(session, "setting.put", "Setting", old={key: old}, new={key: value}, estate_id=estate_id)
