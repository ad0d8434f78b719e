"""Tenant unit dashboard (T1): balances with days of credit left, live use, supply, usage chart."""
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
from app.layers.tenant.usage import chart_context
from app.layers.tenant.views import ROLES
from app.reports.history import viewer_windows
from app.reports.usage import unit_dashboard


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    dashboard = unit_dashboard(db.session, found, windows=viewer_windows(db.session, current_user, found))
    utility = dashboard.utilities[0] if dashboard.utilities else "electricity"
    return render("tenant/unit.html", "dashboard", dash=dashboard, card=dashboard.card,
                  **chart_context(found, dashboard.meter_ids.get(utility, []), dashboard.utilities,
                                  utility, "daily"))
