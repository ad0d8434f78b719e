"""Owner usage analytics (O3): use per unit, top consumers, solar generation vs use."""
from flask import abort, request
from flask_babel import gettext

from app.analytics.usage_analytics import usage_report, utilities_metered
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.layers.owner import bp
from app.layers.owner.selection import current_selection
from app.models.meter import UTILITIES
from app.periods import parse_period
from app.reports.export import Column


@bp.get("/usage")
def usage():
    """One utility's use per unit in one local month (`?utility=`, `?month=YYYY-MM`)."""
    selection = current_selection()
    metered = utilities_metered(db.session, selection.unit_ids)
    utility = request.args.get("utility", "").strip() or (metered[0] if metered else "electricity")
    if utility not in UTILITIES:
        abort(400, gettext("utility must be one of %(choices)s", choices=", ".join(UTILITIES)))
    month = request.args.get("month", "").strip() or selection.current_period()
    report = usage_report(db.session, selection.unit_ids, utility, *parse_period(month))  # InvalidPeriod: 400
    fmt = requested_format()
    if fmt:
        return respond(report.units, usage_columns(report), titled(N_("Usage %(utility)s %(month)s"), utility=utility, month=month), fmt)
    return render("owner/usage.html", selection=selection, report=report, utilities=metered or [utility],
                  month=month, in_progress=month == selection.current_period())


def usage_columns(report) -> list[Column]:
    """The per-unit table's columns for this report's utility."""
    return [
        Column("Unit", lambda row: row.number),
        Column("Estate", lambda row: row.estate_name),
        Column("Status", lambda row: row.status),
        Column(f"Used ({report.unit.lower()})", lambda row: row.used, numeric=True),
        Column("Previous month", lambda row: row.previous, numeric=True),
        Column(N_("Share of total %"), lambda row: report.share_of_total(row), numeric=True),
    ]
