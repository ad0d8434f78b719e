"""Meter settings staff change from the meter page: whether a meter reports on its interval's boundaries."""
from __future__ import annotations

from sqlalchemy.orm import Session

from app import audit
from app.models import Meter


def set_reports_on_boundaries(session: Session, meter: Meter, on: bool) -> Meter:
    """Hold the meter's readings to its interval's boundaries (or not); audit and commit."""
    old = meter.reports_on_boundaries
    if old != on:
        meter.reports_on_boundaries = on
        audit.record(session, "meter.reports_on_boundaries", meter, old={"reports_on_boundaries": old},
                     new={"reports_on_boundaries": on}, estate_id=meter.estate_id)
    session.commit()
    return meter
