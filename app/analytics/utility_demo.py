"""Demo figures for the utility login: the stored loss days and anomaly scores the daily jobs would have made."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Estate, utcnow


def seed_utility_figures(session: Session, days: int = 60) -> None:
    """Compute the demo estates' last `days` loss days and yesterday's anomaly scores; the caller commits."""
    from app.analytics.losses import alert_new_episodes, compute_days
    from app.analytics.revenue_assurance import score_estate
    from app.settings import put_setting

    now = utcnow()
    for estate in session.scalars(select(Estate).order_by(Estate.id)).all():
        today = now.astimezone(estate.tz).date()
        rows = compute_days(session, estate, today - timedelta(days=days), today - timedelta(days=1), now=now)
        alert_new_episodes(session, estate, rows)
        score_estate(session, estate, today - timedelta(days=1))
        if estate.code == "MAS":  # a threshold, so the demand page has something to compare against
            put_setting(session, "demand_threshold_kw", "10", estate.id)
    session.flush()
