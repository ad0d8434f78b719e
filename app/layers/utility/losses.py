"""Utility losses page (U1, U2): one estate's bulk against unit meters per day or month."""
from datetime import timedelta

from flask import abort, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.analytics.losses import daily_series, estate_utilities, monthly_series
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.layers.export import requested_format, respond
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.periods import add_months
from app.reports.export import Column
from app.reports.summaries import loss_threshold

GRAINS = {"day": 30, "month": 12}  # how far back each grain looks by default


@bp.get("/estates/<int:estate_id>/losses")
def losses(estate_id: int):
    """Loss % per day (last 30) or month (last 12), with the threshold, chart, table and exports."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    utilities = estate_utilities(db.session, estate.id)
    utility = request.args.get("utility") or (utilities[0] if utilities else "electricity")
    if utility not in utilities and utilities:
        abort(404)
    grain = request.args.get("grain", "day")
    if grain not in GRAINS:
        abort(400, _("grain must be day or month"))
    threshold = loss_threshold(db.session, estate.id)
    today = utcnow().astimezone(estate.tz).date()
    if grain == "day":
        rows = daily_series(db.session, estate.id, utility, today - timedelta(days=GRAINS["day"]), today)
    else:
        first = add_months(today.replace(day=1), -(GRAINS["month"] - 1))
        rows = monthly_series(db.session, estate.id, utility, first, today, threshold)
    fmt = requested_format()
    if fmt:
        title = (_("%(estate)s %(utility)s losses by day", estate=estate.name, utility=utility.replace("_", " "))
                 if grain == "day" else
                 _("%(estate)s %(utility)s losses by month", estate=estate.name, utility=utility.replace("_", " ")))
        return respond(rows, LOSS_COLUMNS, title, fmt, subtitle=_("Threshold %(threshold)s %%", threshold=threshold),
                       timezone=estate.timezone)
    over = [r for r in rows if r.over_threshold]
    incomplete = [r for r in rows if not r.complete]
    return render("utility/losses.html", estate=estate, utilities=utilities, utility=utility, grain=grain,
                  rows=rows, threshold=threshold, over=over, incomplete=incomplete)


def _state(row) -> str:
    if not row.complete:
        return _("Incomplete (%(n)s without readings)", n=row.missing_meters)
    return _("Over threshold") if row.over_threshold else _("Within threshold")


LOSS_COLUMNS = [
    Column(_l("Period"), lambda r: r.label),
    Column(_l("Bulk"), lambda r: r.bulk, numeric=True),
    Column(_l("Units together"), lambda r: r.units, numeric=True),
    Column(_l("Variance"), lambda r: r.variance, numeric=True),
    Column(_l("Loss %"), lambda r: r.loss_percent, numeric=True),
    Column(_l("Threshold %"), lambda r: r.threshold, numeric=True),
    Column(_l("State"), _state),
]
