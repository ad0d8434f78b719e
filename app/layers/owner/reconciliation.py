"""Owner revenue reconciliation (O2): billed vs collected per utility and month, with export."""
from flask_babel import gettext

from app.analytics.reconciliation import MAX_MONTHS, reconcile
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.export import requested_format, respond, titled
from app.layers.owner import bp
from app.layers.owner.selection import current_selection, int_arg
from app.money import UTILITY_UNITS
from app.reports.export import Column, money_column


@bp.get("/reconciliation")
def reconciliation():
    """Billed vs collected over the last `months` months (default 12) for the selected units."""
    selection = current_selection()
    months = int_arg("months", 12, 1, MAX_MONTHS)
    report = reconcile(db.session, selection.unit_ids, selection.current_period(), months)
    fmt = requested_format()
    if fmt:
        title = (titled(N_("Revenue reconciliation %(estate)s"), estate=selection.estate.name) if selection.estate
                 else N_("Revenue reconciliation"))
        return respond(report.lines(), RECONCILIATION_COLUMNS, title, fmt,
                       subtitle=f"{report.periods[0]} to {report.periods[-1]}")
    return render("owner/reconciliation.html", selection=selection, report=report, months=months,
                  quantity_units=UTILITY_UNITS)


RECONCILIATION_COLUMNS = [
    Column("Month", lambda line: line.period or gettext("Total")),
    Column("Utility", lambda line: label("utility", line.utility)),
    money_column("Billed", lambda line: line.billed, lambda line: line.commodity),
    money_column("Collected", lambda line: line.collected, lambda line: line.commodity),
    money_column("Difference", lambda line: line.difference, lambda line: line.commodity),
    Column(N_("Flagged"), lambda line: gettext("yes") if line.flagged else ""),
]
