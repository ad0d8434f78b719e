"""Utility demand page (U5): demand now, the estate's demand curve by hour, demand events."""
from flask import abort, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.analytics.demand import current_demand, demand_curve, demand_settings, recent_events
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.formatting import translated_label
from app.layers.export import requested_format, respond
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.reports.export import Column

CURVE_COLUMNS = [Column(_l("Hour"), lambda r: f"{r[0]:02d}:00"), Column(_l("Average kW"), lambda r: r[1], numeric=True)]
EVENT_COLUMNS = [
    Column(_l("Started"), lambda e: e.started_at), Column(_l("Peak kW"), lambda e: e.peak_kw, numeric=True),
    Column(_l("Threshold kW"), lambda e: e.threshold_kw, numeric=True), Column(_l("State"), lambda e: translated_label(e.state, "demand_state")),
    Column(_l("Units held"), lambda e: len(e.held_meter_ids or []), numeric=True),
    Column(_l("Ended"), lambda e: e.ended_at),
]


@bp.get("/estates/<int:estate_id>/demand")
def demand(estate_id: int):
    """Demand now against the threshold, the 30-day demand curve and recent events."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    curve = demand_curve(db.session, estate)
    events = recent_events(db.session, estate.id)
    fmt = requested_format()
    if fmt:
        table = request.args.get("table", "curve")
        if table == "curve":
            return respond(curve, CURVE_COLUMNS, _("%(estate)s demand by hour", estate=estate.name), fmt, timezone=estate.timezone)
        if table == "events":
            return respond(events, EVENT_COLUMNS, _("%(estate)s demand events", estate=estate.name), fmt, timezone=estate.timezone)
        abort(400, _("table must be curve or events"))
    return render("utility/demand.html", estate=estate, curve=curve, events=events,
                  settings=demand_settings(db.session, estate.id), now_kw=current_demand(db.session, estate.id))
