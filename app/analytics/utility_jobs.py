"""The utility layer's periodic jobs: daily losses and anomaly scores, demand every five minutes.

Each runs over every estate (one commit per estate, so one estate's trouble never blocks the
others) and is idempotent: a day recomputed overwrites its own rows, an alert already sent
is not sent again.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs import job
from app.models import Estate, utcnow


@job("utility_losses")
def utility_losses_job(session: Session, progress, now: datetime | None = None) -> str:
    """Each estate's last days of bulk against unit meters; alerts on a new loss episode."""
    from app.analytics.losses import run_losses

    estates = session.scalars(select(Estate).order_by(Estate.id)).all()
    progress.set_total(len(estates))
    days = alerts = 0
    for estate in estates:
        stored, sent = run_losses(session, estate, now=now)
        days, alerts = days + stored, alerts + sent
        progress.step()
    return f"{days} estate-days stored, {alerts} loss alert{'s' if alerts != 1 else ''} sent"


@job("meter_anomalies")
def meter_anomalies_job(session: Session, progress, now: datetime | None = None) -> str:
    """Yesterday's anomaly score for every unit meter; a high score opens a case."""
    from app.analytics.revenue_assurance import CASE_SCORE, score_estate

    estates = session.scalars(select(Estate).order_by(Estate.id)).all()
    progress.set_total(len(estates))
    scored = high = 0
    for estate in estates:
        yesterday = (now or utcnow()).astimezone(estate.tz).date() - timedelta(days=1)
        rows = score_estate(session, estate, yesterday)
        session.commit()
        scored += len(rows)
        high += sum(1 for r in rows if r.score >= CASE_SCORE)
        progress.step()
    return f"{scored} meters scored, {high} at {CASE_SCORE} or more"


@job("demand_watch")
def demand_watch_job(session: Session, progress, now: datetime | None = None) -> str:
    """Estate demand against its threshold: warnings, holds on the heaviest consumers, restoration."""
    from app.analytics.demand import run_demand

    checked = run_demand(session, now=now)
    return f"{checked} estate{'s' if checked != 1 else ''} checked"


@job("utility_profiles")
def utility_profiles_job(session: Session, progress, now: datetime | None = None) -> str:
    """Each estate's consumption profiles (7, 30 and 90 days) stored for the profiles page."""
    from app.analytics.profiles import store_profiles

    estates = session.scalars(select(Estate).order_by(Estate.id)).all()
    progress.set_total(len(estates))
    rows = 0
    for estate in estates:
        rows += store_profiles(session, estate, now=now)
        session.commit()
        progress.step()
    return f"{len(estates)} estate{'s' if len(estates) != 1 else ''} profiled, {rows} hour rows stored"
