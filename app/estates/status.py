"""Status changes of an estate: a unit's occupancy and a financial period's status. Each is audited."""

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models import Estate, FinancialPeriod, OccupancyChange, Unit
from app.models.estate import OCCUPANCY_STATUSES, PERIOD_STATUSES
from app.periods import is_period

# A period only moves forward: open -> closed -> locked (locked is final, also in the database).
PERIOD_ORDER = {status: rank for rank, status in enumerate(PERIOD_STATUSES)}


class EstateRuleError(ValueError):
    """A change the rules refuse; the message says why, in the reader's language (pages show it)."""


def _status_word(status: str) -> str:
    """A period status as the refusals write it ("locked"), in the reader's language."""
    from app.labels import label

    return gettext(label("period_status", status)).lower()


def set_occupancy(session: Session, unit: Unit, status: str, user_id: int | None = None) -> bool:
    """Change a unit's occupancy status, keeping history; returns False when nothing changed."""
    if status not in OCCUPANCY_STATUSES:
        raise EstateRuleError(gettext("occupancy must be one of %(choices)s", choices=", ".join(OCCUPANCY_STATUSES)))
    if unit.occupancy_status == status:
        return False
    audit.record(session, "unit.occupancy", unit, old={"status": unit.occupancy_status},
                 new={"status": status})
    unit.occupancy_status = status
    session.add(OccupancyChange(unit_id=unit.id, status=status, changed_by_user_id=user_id))
    return True


def set_period_status(session: Session, estate: Estate, period: str, status: str) -> FinancialPeriod:
    """Close or lock an estate's month (C8); a period never moves back; commits once."""
    if not is_period(period):
        raise EstateRuleError(gettext("a period is written YYYY-MM"))
    if status not in PERIOD_STATUSES:
        raise EstateRuleError(gettext("status must be one of %(choices)s", choices=", ".join(PERIOD_STATUSES)))
    row = session.scalar(select(FinancialPeriod).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period == period))
    current = row.status if row else "open"
    if PERIOD_ORDER[status] < PERIOD_ORDER[current]:
        raise EstateRuleError(gettext("%(period)s is %(current)s; it cannot go back to %(status)s", period=period,
                                      current=_status_word(current), status=_status_word(status)))
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
    changed = switch_feature(session, estate, name, wanted)
    if changed:
        session.commit()
    return changed


def switch_feature(session: Session, estate: Estate, name: str, wanted: bool) -> bool:
    """Switch a feature flag, audited; False when nothing changed; the caller commits."""
    before = estate.feature_enabled(name)
    if before == wanted:
        return False
    estate.features = {**(estate.features or {}), name: wanted}
    audit.record(session, "estate.feature", estate, old={name: before}, new={name: wanted}, estate_id=estate.id)
    return True

