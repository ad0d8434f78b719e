"""Owner vacancy tracking (O4): status per unit, change history, vacancy rate per month."""
from app.analytics.vacancy import change_history, current_statuses, vacancy_by_month
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond
from app.layers.owner import bp
from app.layers.owner.selection import current_selection, int_arg
from app.models.estate import OCCUPANCY_STATUSES
from app.reports.export import Column


@bp.get("/vacancy")
def vacancy():
    """Units by status now, the last 12 months' vacancy rate and a page of the change history."""
    selection = current_selection()
    page = int_arg("page", 1, 1)
    months = vacancy_by_month(db.session, selection.unit_ids, selection.current_period(), 12)
    fmt = requested_format()
    if fmt:
        return respond(months, VACANCY_COLUMNS, N_("Vacancy rate"), fmt)
    statuses = current_statuses(db.session, selection.unit_ids)
    changes, pages = change_history(db.session, selection.unit_ids, page)
    counts = {status: sum(1 for row in statuses if row.status == status) for status in OCCUPANCY_STATUSES}
    return render("owner/vacancy.html", "history", selection=selection, months=months, statuses=statuses,
                  counts=counts, changes=changes, page=min(page, pages), pages=pages)


VACANCY_COLUMNS = [
    Column("Month", lambda m: m.period),
    Column(N_("Unit-days known"), lambda m: m.unit_days, numeric=True),
    Column(N_("Occupied %"), lambda m: m.percent("occupied"), numeric=True),
    Column(N_("Vacant %"), lambda m: m.percent("vacant"), numeric=True),
    Column(N_("Maintenance %"), lambda m: m.percent("maintenance"), numeric=True),
]
