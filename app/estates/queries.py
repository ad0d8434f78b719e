"""Reads about estates: the recent financial periods and their status."""
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Estate, FinancialPeriod


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
