"""Debt cohort pages (A5, issue 16): an estate's cohort of top debtors, its collection progress month by
month (chart, table, CSV/PDF) and its members.

Staff reach every estate, agents the estates they manage (`ROLES`); the work is in
`app/billing/cohorts.py` (cohorts are taken and snapshotted by the daily job and `flask cohorts`).
"""
from __future__ import annotations

from flask import abort, request
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.billing import cohorts as cohorts_module
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.admin import ROLES, bp
from app.layers.export import requested_format, respond, titled
from app.reports.export import Column, money_column

MONTH_COLUMNS = [
    Column("Month", lambda m: m.month.strftime("%Y-%m")),
    Column(N_("Members snapshotted"), lambda m: m.members, numeric=True),
    money_column("Owed", lambda m: m.debt, lambda m: m.currency),
    money_column("Paid in the month", lambda m: m.payments, lambda m: m.currency),
    money_column(N_("Billed in the month"), lambda m: m.consumption, lambda m: m.currency),
    Column(N_("Debt down since taken (%)"), lambda m: m.reduced_percent, numeric=True),
    Column("Cleared", lambda m: m.cleared, numeric=True),
]
MEMBER_COLUMNS = [
    Column("Rank", lambda r: r[0].rank, numeric=True),
    Column("Unit", lambda r: r[1].number),
    Column("Account", lambda r: r[1].account_number or ""),
    money_column("Owed when taken", lambda r: r[0].owed, lambda r: r[3]),
    money_column("Used the year before", lambda r: r[0].usage, lambda r: r[3]),
    money_column("Owed now", lambda r: r[2].debt if r[2] else None, lambda r: r[3]),
    money_column("Balance now", lambda r: r[2].balance if r[2] else None, lambda r: r[3]),
]


class _Month:
    """A month's progress with the estate's currency, for the export columns."""

    def __init__(self, progress, currency: str):
        self.__dict__.update(progress.__dict__)
        self.currency = currency


@bp.get("/estates/<int:estate_id>/cohorts")
def cohorts(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = cohorts_module.cohorts_of(db.session, estate)
    try:
        wanted = cohorts_module.parse_fiscal_year((request.args.get("fy") or "")[:8])
    except cohorts_module.CohortError:
        abort(400, _("Choose a fiscal year like FY2027."))
    cohort = next((c for c in found if c.fiscal_year == wanted), None) if wanted else (found[0] if found else None)
    if wanted and cohort is None:
        abort(404)
    view = cohorts_module.cohort_view(db.session, cohort) if cohort else None
    settings = cohorts_module.cohort_settings(db.session, estate)
    if fmt := requested_format():
        if view is None:
            abort(404)
        label = cohorts_module.fiscal_year_text(cohort.fiscal_year)
        if request.args.get("table") == "members":
            rows = [(*row, estate.currency) for row in view.members]
            return respond(rows, MEMBER_COLUMNS, titled(N_("Debt cohort %(year)s members %(estate)s"), year=label, estate=estate.name), fmt,
                           timezone=estate.timezone)
        return respond([_Month(m, estate.currency) for m in view.months], MONTH_COLUMNS,
                       f"Debt cohort {label} {estate.name}", fmt, timezone=estate.timezone,
                       subtitle=f"{len(view.members)} members, taken {cohort.taken_on.isoformat()}")
    fiscal_year = cohorts_module.fiscal_year_of(
        cohorts_module.utcnow().astimezone(estate.tz).date(), estate.fiscal_year_start_month)
    return render("admin/cohorts.html", estate=estate, cohorts=found, cohort=cohort, view=view, settings=settings,
                  fiscal_year_text=cohorts_module.fiscal_year_text, current_fy=fiscal_year,
                  next_day=cohorts_module.cohort_day(db.session, estate, fiscal_year))
