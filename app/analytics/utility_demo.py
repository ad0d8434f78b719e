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
    seed_carbon_and_solar(session)


# Emission factors for the demo countries (kg CO2e per kWh or kL). South Africa's grid factor is
# Eskom's published figure, rounded; the others are illustrative demo figures.
DEMO_FACTORS = (
    ("ZA", "electricity", "2020-01-01", "1.0400", "Eskom integrated report 2020 (rounded)"),
    ("ZA", "electricity", "2026-07-01", "0.9500", "Eskom integrated report 2025 (rounded)"),
    ("ZA", "water", "2020-01-01", "0.3500", "Demo figure: pumping and treatment"),
    ("ZA", "hot_water", "2020-01-01", "44.0000", "Demo figure: heating 1 kL by 40 °C, about 46.5 kWh at the grid factor"),
    ("LS", "electricity", "2020-01-01", "0.2000", "Demo figure: Muela hydro with imports"),
    ("LS", "water", "2020-01-01", "0.3000", "Demo figure"),
)


def seed_carbon_and_solar(session: Session) -> None:
    """Emission factors, and Sunbird's shared solar by floor area for its last complete month (posted; commits)."""
    from datetime import date
    from decimal import Decimal

    from app.billing.shared_solar import SolarError, run_allocation, save_scheme
    from app.models.utility import EmissionFactor
    from app.periods import last_complete_period

    for country, utility, day, kg, source in DEMO_FACTORS:
        session.add(EmissionFactor(country=country, utility=utility, effective_from=date.fromisoformat(day),
                                   kg_per_unit=Decimal(kg), source=source))
    session.flush()
    estate = session.scalar(select(Estate).where(Estate.code == "SUN"))
    if estate is None:
        return
    save_scheme(session, estate, {"method": "floor_area"})
    try:
        run_allocation(session, estate, last_complete_period(estate.tz, utcnow()))
    except SolarError:
        session.rollback()  # a closed or locked month: the page shows the plan instead
